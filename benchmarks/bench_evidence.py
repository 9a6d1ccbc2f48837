"""Does the labelled evidence of real failed runs reach the vector store, citable and findable?

Over `../shared/eval-data/` (TRAIL and Who&When; skipped when absent):

- loaded: every TRAIL trace and Who&When log loads, with how many runs;
- evidence survival (TRAIL): of the gold errors whose `evidence` (first 80 characters, white space
  normalised) occurs verbatim in the raw span it is labelled on, the share that occurs in an
  uploaded chunk (the files as uploaded: rendered and redacted, cut as the store cuts them:
  800-token windows, 400 overlap) which also carries the gold span id;
- retrieval (TRAIL): recall@5 and @10 of such a chunk through the local server's retrieval
  (`refinery.testing.retrieval`, the code behind its `file_search` and vector store search),
  with the gold `description` as the query, beside the exact expectation for chunks ranked at
  random;
- Who&When: the share of logs where the gold `mistake_step` renders as that step number with
  the speaker's name exactly as written, and where the gold agent's name appears verbatim;
- rendered size ÷ raw size, and render time per MB.

Run: `python benchmarks/bench_evidence.py [--shared PATH] [--json]`. Figures go in
docs/benchmarks.md. The last lines printed are the summary.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from refinery.testing.openapi_spec import find_shared  # noqa: E402
from refinery.testing.retrieval import Chunk, bm25, chunk_text  # noqa: E402
from refinery.traces import load_trace  # noqa: E402
from refinery.traces.common import maybe_json  # noqa: E402
from refinery.traces.render import CHUNK_OVERLAP_TOKENS, CHUNK_SIZE_TOKENS  # noqa: E402
from refinery.traces.spool import upload_files_for  # noqa: E402


def norm(text: str) -> str:
    return " ".join(text.split())


def shared_folder(given: str | None) -> Path | None:
    """--shared, else the rule the tests use (`$REFINERY_SHARED`, else ../shared beside the repo)."""
    shared = Path(given) if given else find_shared(Path(__file__))
    return shared if shared and (shared / "eval-data").is_dir() else None


def strings_in(value: Any, out: list[str]) -> None:
    """Every string in a span (JSON-in-strings decoded too), children excluded."""
    if isinstance(value, dict):
        for k, v in value.items():
            if k not in ("child_spans", "ChildSpans"):
                strings_in(v, out)
    elif isinstance(value, list):
        for v in value:
            strings_in(v, out)
    elif isinstance(value, str):
        out.append(value)
        decoded = maybe_json(value)
        if decoded is not value and not isinstance(decoded, str):
            strings_in(decoded, out)


def raw_spans(data: Any) -> dict[str, str]:
    spans: dict[str, str] = {}

    def walk(span: dict[str, Any]) -> None:
        texts: list[str] = []
        strings_in(span, texts)
        spans[str(span.get("span_id"))] = norm("\n".join(texts))
        for child in span.get("child_spans") or []:
            walk(child)

    for span in data.get("spans") or []:
        walk(span)
    return spans


def random_recall(n: int, good: int, k: int) -> float:
    """Exact chance that a uniformly random ranking of n chunks has one of `good` in its top k."""
    if good == 0 or n == 0:
        return 0.0
    k = min(k, n)
    return 1.0 - math.comb(n - good, k) / math.comb(n, k)


def bench_trail(root: Path) -> dict[str, Any]:
    traces = sorted((root / "traces").glob("*/*.json"))
    out: dict[str, Any] = {"files": len(traces), "loaded": 0, "runs": 0, "failed_runs": 0, "raw_bytes": 0, "rendered_chars": 0, "seconds": 0.0}
    gold = eligible = survived = 0
    hits5 = hits10 = 0
    rand5 = rand10 = 0.0
    misses: list[str] = []
    for path in traces:
        ann_path = root / "annotations" / path.parent.name / path.name
        raw = path.read_bytes()
        t0 = time.perf_counter()
        trace = load_trace(path)
        files, _ = upload_files_for(trace)
        out["seconds"] += time.perf_counter() - t0
        out["loaded"] += 1
        out["runs"] += len(trace.runs)
        out["failed_runs"] += len(trace.get_failed_runs())
        out["raw_bytes"] += len(raw)
        out["rendered_chars"] += sum(len(text) for _, text in files)
        if not ann_path.is_file():
            continue
        spans = raw_spans(json.loads(raw))
        chunks = [Chunk(name, name, c, {}) for name, text in files for c in chunk_text(text, CHUNK_SIZE_TOKENS, CHUNK_OVERLAP_TOKENS)]
        normed = [norm(c.text) for c in chunks]
        for err in json.loads(ann_path.read_text()).get("errors") or []:
            gold += 1
            loc = str(err.get("location") or "")
            ev = norm(str(err.get("evidence") or ""))[:80]
            if not ev or ev not in spans.get(loc, ""):
                continue
            eligible += 1
            good = {i for i, (c, t) in enumerate(zip(chunks, normed)) if ev in t and loc in c.text}
            if good:
                survived += 1
            else:
                misses.append(f"{path.name[:8]} {loc}: {ev[:50]!r}")
            ranked = bm25(str(err.get("description") or ""), chunks)
            order = {id(h.chunk): r for r, h in enumerate(ranked)}
            ranks = sorted(order[id(chunks[i])] for i in good)
            hits5 += bool(ranks and ranks[0] < 5)
            hits10 += bool(ranks and ranks[0] < 10)
            rand5 += random_recall(len(chunks), len(good), 5)
            rand10 += random_recall(len(chunks), len(good), 10)
    out.update(
        gold_errors=gold,
        eligible=eligible,
        survived=survived,
        survival=survived / eligible if eligible else 0.0,
        recall_at_5=hits5 / eligible if eligible else 0.0,
        recall_at_10=hits10 / eligible if eligible else 0.0,
        random_recall_at_5=rand5 / eligible if eligible else 0.0,
        random_recall_at_10=rand10 / eligible if eligible else 0.0,
        misses=misses,
    )
    return out


def bench_who_and_when(root: Path) -> dict[str, Any]:
    logs = sorted(root.glob("*/*.json"))
    out: dict[str, Any] = {"files": len(logs), "loaded": 0, "raw_bytes": 0, "rendered_chars": 0, "seconds": 0.0}
    step_ok = agent_in_heading = agent_verbatim = 0
    notes: list[str] = []
    for path in logs:
        raw = path.read_bytes()
        data = json.loads(raw)
        t0 = time.perf_counter()
        trace = load_trace(path)
        files, _ = upload_files_for(trace)
        out["seconds"] += time.perf_counter() - t0
        out["loaded"] += 1
        out["raw_bytes"] += len(raw)
        out["rendered_chars"] += sum(len(text) for _, text in files)
        text = "\n".join(t for _, t in files)
        step = int(str(data["mistake_step"]).strip("'\" "))
        entry = data["history"][step]
        speaker = str(entry.get("name") or entry.get("role"))
        heading = f"## Step {step}: {speaker} [run_id: step-{step}]"
        gold_agent = str(data["mistake_agent"])
        step_ok += heading in text
        in_heading = heading in text and speaker.startswith(gold_agent)
        agent_in_heading += in_heading
        agent_verbatim += gold_agent in text
        if not in_heading:
            notes.append(f"{path.parent.name}/{path.name}: step {step} is spoken by {speaker!r}, the label says {gold_agent!r}")
    n = len(logs) or 1
    out.update(
        step_renders=step_ok / n,
        gold_agent_is_the_step_speaker=agent_in_heading / n,
        gold_agent_verbatim=agent_verbatim / n,
        label_notes=notes,
    )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", help="the shared folder holding eval-data/ (default: ../shared beside the repo)")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args(argv)
    shared = shared_folder(args.shared)
    if shared is None:
        print("bench_evidence: skipped, no eval-data folder found (../shared/eval-data or $REFINERY_SHARED)")
        return 0
    trail = bench_trail(shared / "eval-data" / "trail")
    ww = bench_who_and_when(shared / "eval-data" / "who-and-when")
    if args.json:
        print(json.dumps({"trail": trail, "who_and_when": ww}, indent=2))
        return 0
    for note in trail["misses"]:
        print(f"  evidence not in a chunk with its span id: {note}")
    for note in ww["label_notes"]:
        print(f"  who&when label/trace disagreement: {note}")
    mb = lambda d: d["raw_bytes"] / 1e6  # noqa: E731
    print(f"TRAIL: loaded {trail['loaded']}/{trail['files']} traces, {trail['runs']} runs, {trail['failed_runs']} failed; rendered/raw {trail['rendered_chars'] / trail['raw_bytes']:.2f}; {trail['seconds'] / mb(trail):.2f} s per MB (load+render+redact)")
    print(f"TRAIL evidence survival: {trail['survived']}/{trail['eligible']} = {trail['survival']:.1%} (gold errors {trail['gold_errors']}, evidence verbatim in the raw span {trail['eligible']}; goal ≥ 95 %)")
    print(f"TRAIL retrieval (query = gold description): recall@5 {trail['recall_at_5']:.1%} (random {trail['random_recall_at_5']:.1%}), recall@10 {trail['recall_at_10']:.1%} (random {trail['random_recall_at_10']:.1%})")
    print(f"Who&When: loaded {ww['loaded']}/{ww['files']} logs; rendered/raw {ww['rendered_chars'] / ww['raw_bytes']:.2f}; {ww['seconds'] / mb(ww):.2f} s per MB")
    print(f"Who&When: gold mistake_step renders as 'Step N' with the speaker's exact name: {ww['step_renders']:.1%} (goal 100 %)")
    print(f"Who&When: gold agent is that step's speaker (as labelled): {ww['gold_agent_is_the_step_speaker']:.1%}; gold agent's name verbatim in the files: {ww['gold_agent_verbatim']:.1%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
