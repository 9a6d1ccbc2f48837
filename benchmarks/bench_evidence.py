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
- rendered size ÷ raw size, and render time per MB;
- evidence in view (TRAIL): of those gold errors, the share whose evidence text stands in some
  Stage 1 request under its span's own heading, as `refinery plan` builds the requests (Stage 1
  reading its groups inline), and — reading by search instead — the share found in a chunk the
  local server's `file_search` actually returned for a Stage 1 call (with the span id in it);
- Stage 1 input tokens and estimated cost per trace, both ways (gpt-4o prices, worst case);
- verification honesty (every trace of both benchmarks, analysed end to end against the local
  server): of the claims marked verified that quote something, the share whose quote is in the
  cited run's raw source, checked here from the original JSON (never from the rendering).

Run: `python benchmarks/bench_evidence.py [--shared PATH] [--json] [--no-server] [--end-to-end]`
(`--no-server` skips the search-reading measure, which runs Stage 1 against the local server;
`--end-to-end` adds the honesty of 87 whole analyses, 20 s more). Figures go in
docs/benchmarks.md. The last lines printed are the summary.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing
import os
import re
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from refinery.analysis.plan import measure, plan_summary, planned_requests  # noqa: E402
from refinery.analysis.staged_failure_analyst import STAGE_ARTIFACTS, StagedFailureAnalyst  # noqa: E402
from refinery.analysis.verification import RunTexts, claims_of, normalise, verify  # noqa: E402
from refinery.app.inputs import expectation_for  # noqa: E402
from refinery.testing.openapi_spec import find_shared  # noqa: E402
from refinery.testing.retrieval import Chunk, bm25, chunk_text  # noqa: E402
from refinery.testing.server import OpenAITestServer  # noqa: E402
from refinery.traces import load_trace  # noqa: E402
from refinery.traces.common import maybe_json  # noqa: E402
from refinery.traces.redact import redact_text  # noqa: E402
from refinery.traces.render import CHUNK_OVERLAP_TOKENS, CHUNK_SIZE_TOKENS  # noqa: E402
from refinery.traces.spool import upload_files_for  # noqa: E402
from refinery.wire.responses_client import ResponsesClient  # noqa: E402


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
    out: dict[str, Any] = {
        "files": len(traces),
        "loaded": 0,
        "runs": 0,
        "failed_runs": 0,
        "raw_bytes": 0,
        "rendered_chars": 0,
        "seconds": 0.0,
    }
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
        chunks = [
            Chunk(name, name, c, {})
            for name, text in files
            for c in chunk_text(text, CHUNK_SIZE_TOKENS, CHUNK_OVERLAP_TOKENS)
        ]
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
            notes.append(
                f"{path.parent.name}/{path.name}: step {step} is spoken by {speaker!r}, the label says {gold_agent!r}"
            )
    n = len(logs) or 1
    out.update(
        step_renders=step_ok / n,
        gold_agent_is_the_step_speaker=agent_in_heading / n,
        gold_agent_verbatim=agent_verbatim / n,
        label_notes=notes,
    )
    return out


# --- what Stage 1 has in view, and how honest "verified" is ------------------------------------
_HEADING = re.compile(r"^## (?:Run|Step) \d+: .*? \[run_id: ([^\]]+)\]$", re.M)
_FILE_END = re.compile(r"^===== end of file: ", re.M)


def inline_sections(text: str) -> dict[str, str]:
    """run id → its section in an inline Stage 1 prompt, normalised (the benchmark's own reading)."""
    out: dict[str, str] = {}
    heads = list(_HEADING.finditer(text))
    for i, m in enumerate(heads):
        end = heads[i + 1].start() if i + 1 < len(heads) else len(text)
        stop = _FILE_END.search(text, m.start(), end)
        out[m.group(1)] = out.get(m.group(1), "") + " " + norm(text[m.start() : stop.start() if stop else end])
    return out


def user_text(body: dict[str, Any]) -> str:
    return str(body["input"][-1]["content"][0]["text"])


def eligible_errors(root: Path, path: Path, raw: Any) -> list[tuple[str, str]]:
    """(span id, evidence) of the gold errors whose evidence is verbatim in the labelled span."""
    ann = root / "annotations" / path.parent.name / path.name
    if not ann.is_file():
        return []
    spans = raw_spans(raw)
    found = []
    for err in json.loads(ann.read_text()).get("errors") or []:
        loc, ev = str(err.get("location") or ""), norm(str(err.get("evidence") or ""))[:80]
        if ev and ev in spans.get(loc, ""):
            found.append((loc, ev))
    return found


def stage1_plan(trace: Any, reading: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The Stage 1 bodies `refinery plan` builds for `trace` read `reading`, and its Stage 1 row."""
    analyst = StagedFailureAnalyst(stage1_reading=reading)
    expectation = expectation_for(None, trace)
    files = analyst.render(trace, expectation)
    calls = measure(planned_requests(analyst, trace, files, expectation), keep_bytes=None)
    stage1 = [c.body for c in calls if c.name.startswith("stage1") and c.body is not None]
    return stage1, plan_summary(analyst, trace, files, calls)["stages"]["stage1"]


def returned_chunks(responses: list[dict[str, Any]]) -> list[str]:
    return [
        str(r.get("text") or "")
        for resp in responses
        for item in resp.get("output") or []
        if item.get("type") == "file_search_call"
        for r in item.get("results") or []
    ]


async def bench_reading(root: Path, server: OpenAITestServer | None) -> dict[str, Any]:
    """Evidence in view for Stage 1 read inline and by search; Stage 1 tokens and cost both ways."""
    out: dict[str, Any] = {"eligible": 0, "inline_in_view": 0, "search_in_view": None, "traces": 0, "misses": []}
    tokens = {"inline": 0, "search": 0}
    cost = {"inline": 0.0, "search": 0.0}
    searched = 0
    for path in sorted((root / "traces").glob("*/*.json")):
        raw = json.loads(path.read_bytes())
        trace = load_trace(path)
        errors = eligible_errors(root, path, raw)
        out["traces"] += 1
        by_reading = {reading: stage1_plan(trace, reading) for reading in ("inline", "search")}
        for reading, (_, row) in by_reading.items():
            tokens[reading] += row["input_tokens"]
            cost[reading] += row["estimated_cost_usd"] or 0.0
        sections = [inline_sections(user_text(b)) for b in by_reading["inline"][0]]
        chunks: list[str] = []
        if server is not None and errors:
            seen = len(server.responses)
            async with ResponsesClient(api_key="sk-bench", base_url=server.base_url) as client:
                analyst = StagedFailureAnalyst(client=client, stage1_reading="search", store="hosted")
                await analyst.analyze(trace, expectation_for(None, trace), until_stage=1)
            chunks = [norm(c) for c in returned_chunks(server.responses[seen:])]
        for loc, ev in errors:
            out["eligible"] += 1
            inline = any(ev in s.get(loc, "") for s in sections)
            out["inline_in_view"] += inline
            if not inline:
                out["misses"].append(f"{path.name[:8]} {loc}: {ev[:50]!r}")
            if server is not None:
                searched += any(ev in c and f"[run_id: {loc}" in c for c in chunks)
    n = out["traces"] or 1
    out.update(
        inline_share=out["inline_in_view"] / out["eligible"] if out["eligible"] else 0.0,
        search_in_view=searched if server is not None else None,
        search_share=searched / out["eligible"] if server is not None and out["eligible"] else None,
        stage1_input_tokens_per_trace={k: round(v / n) for k, v in tokens.items()},
        stage1_cost_usd_per_trace={k: round(v / n, 4) for k, v in cost.items()},
    )
    return out


def raw_runs(path: Path, raw: Any) -> dict[str, str]:
    """Each run's raw source text (every string in it, JSON-in-strings decoded), by run id."""
    if isinstance(raw, dict) and isinstance(raw.get("history"), list):  # Who&When: step-i is history[i]
        runs = {}
        for i, entry in enumerate(raw["history"]):
            texts: list[str] = []
            strings_in(entry, texts)
            runs[f"step-{i}"] = norm("\n".join(texts))
        return runs
    return raw_spans(raw)


def unify_quote_marks(text: str) -> str:
    """Curly quotation marks as straight ones, on both sides of the comparison."""
    return text.replace("\u201c", '"').replace("\u201d", '"').replace("\u2018", "'").replace("\u2019", "'")


def quote_forms(quote: str) -> str:
    q = norm(unify_quote_marks(quote))
    q = q.strip().strip('"').strip("'").strip()
    return q.removeprefix("...").removesuffix("...").removeprefix("…").removesuffix("…").strip()


async def bench_honesty(paths: list[Path], server: OpenAITestServer) -> dict[str, Any]:
    """Of the claims marked verified that quote something, the share whose quote is in the cited
    run's raw source (read from the original JSON here), over end-to-end analyses."""
    out: dict[str, Any] = {"traces": 0, "claims": 0, "verified": 0, "verified_quoting": 0, "in_raw": 0, "dishonest": []}
    with tempfile.TemporaryDirectory() as tmp:
        async with ResponsesClient(api_key="sk-bench", base_url=server.base_url) as client:
            for k, path in enumerate(paths):
                raw = json.loads(path.read_bytes())
                trace = load_trace(path)
                runs = {rid: unify_quote_marks(text) for rid, text in raw_runs(path, raw).items()}
                folder = Path(tmp) / f"{k:03d}"
                await StagedFailureAnalyst(client=client, artifacts_dir=folder, store="hosted").analyze(
                    trace, expectation_for(None, trace)
                )
                out["traces"] += 1
                for stage, artifact in STAGE_ARTIFACTS.items():
                    data = json.loads((folder / artifact).read_text())
                    check = data["meta"].get("verification")
                    if not check:
                        continue
                    failed = {u["path"] for u in check["unverified"]}
                    for claim in claims_of(data["output"]):
                        out["claims"] += 1
                        if claim.path in failed:
                            continue
                        out["verified"] += 1
                        quotes = [
                            q
                            for q in [claim.quote, *re.findall(r'"([^"]{8,})"', claim.reason or "")]
                            if q and quote_forms(q)
                        ]
                        if not quotes:
                            continue
                        out["verified_quoting"] += 1
                        if all(quote_forms(q) in runs.get(claim.run_id, "") for q in quotes):
                            out["in_raw"] += 1
                        else:
                            out["dishonest"].append(
                                f"{path.name} {stage} {claim.path} {claim.run_id}: {quotes[0][:60]!r}"
                            )
    out["share"] = out["in_raw"] / out["verified_quoting"] if out["verified_quoting"] else None
    return out


def bench_every_line(paths: list[Path]) -> dict[str, Any]:
    """Every line of every rendered run section quoted as evidence — for its own run, and for the
    run before it — through refinery's verifier, with the raw JSON as the oracle: how many lines
    verify, and how many of those are not in the cited run's raw source (redacted as uploaded).
    Beside it the rule before 0.2 (a quote anywhere in the cited run's rendered section, markers
    and fences removed; its fallback to any retrieved chunk made it laxer still)."""
    out: dict[str, Any] = {
        "quotes": 0,
        "verified": 0,
        "not_in_raw": 0,
        "examples": [],
        "old_rule_verified": 0,
        "old_rule_not_in_raw": 0,
    }
    for path in paths:
        raw = json.loads(path.read_bytes())
        runs = {rid: unify_quote_marks(norm(redact_text(text))) for rid, text in raw_runs(path, raw).items()}
        files = upload_files_for(load_trace(path))[0]
        texts = RunTexts(files)
        order: list[str] = []
        sections: dict[str, str] = {}
        for i in range(len(files)):
            text = files[i][1]
            for rid, start, end in files.layout(i).sections():
                cited = [rid] + ([order[-1]] if order else [])
                order.append(rid)
                sections[rid] = sections.get(rid, "") + " " + normalise(text[start:end])
                for line in {ln.strip() for ln in text[start:end].splitlines() if 12 <= len(ln.strip()) <= 300}:
                    for who in cited:
                        out["quotes"] += 1
                        if quote_forms(line) and quote_forms(line) in sections.get(who, ""):
                            out["old_rule_verified"] += 1
                            out["old_rule_not_in_raw"] += quote_forms(line) not in runs.get(who, "")
                        if verify({"run_id": who, "evidence": line}, texts).unverified:
                            continue
                        out["verified"] += 1
                        if quote_forms(line) not in runs.get(who, ""):
                            out["not_in_raw"] += 1
                            if len(out["examples"]) < 10:
                                out["examples"].append(f"{path.name} {who}: {line[:70]!r}")
    return out


def _every_line_into(paths: list[Path], out: Any) -> None:
    """`bench_every_line` in a process of its own, its figures put on the queue `out`."""
    out.put(bench_every_line(paths))


def _stopped(signum: int, frame: Any) -> None:
    """Stopped from outside (`timeout`): what was printed stays, the every-line process is ended,
    and no traceback follows (an exception raised here surfaced from whatever wait it came into)."""
    sys.stdout.flush()
    for child in multiprocessing.active_children():
        child.terminate()
    os._exit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", help="the shared folder holding eval-data/ (default: ../shared beside the repo)")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    ap.add_argument(
        "--no-server", action="store_true", help="skip the measures that run analyses against the local test server"
    )
    ap.add_argument(
        "--end-to-end", action="store_true", help="also analyse every trace end to end (verification honesty)"
    )
    args = ap.parse_args(argv)
    shared = shared_folder(args.shared)
    if shared is None:
        print("bench_evidence: skipped, no eval-data folder found (../shared/eval-data or $REFINERY_SHARED)")
        return 0
    # Each part's lines are printed as soon as it is measured, the slowest part (every line quoted)
    # measured meanwhile in a process of its own: a caller that stops the run after a while (the
    # checks before a stop give it 40 s) still sees what was measured by then.
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    signal.signal(signal.SIGTERM, _stopped)
    paths = sorted((shared / "eval-data" / "trail" / "traces").glob("*/*.json"))
    paths += sorted((shared / "eval-data" / "who-and-when").glob("*/*.json"))
    queue: Any = multiprocessing.Queue()
    worker = multiprocessing.Process(target=_every_line_into, args=(paths, queue), daemon=True)
    worker.start()
    trail = bench_trail(shared / "eval-data" / "trail")
    if not args.json:
        print_trail(trail)
    ww = bench_who_and_when(shared / "eval-data" / "who-and-when")
    if not args.json:
        print_who_and_when(ww)
    reading, honesty = asyncio.run(
        served(shared / "eval-data", with_server=not args.no_server, end_to_end=args.end_to_end)
    )
    if not args.json:
        print_reading(reading)
    lines = queue.get()
    worker.join()
    if args.json:
        figures = {
            "trail": trail,
            "who_and_when": ww,
            "stage1_reading": reading,
            "verification_honesty": honesty,
            "every_line": lines,
        }
        print(json.dumps(figures, indent=2))
        return 0
    print_honesty(lines, honesty)
    print(other_formats(shared))
    return 0


def print_trail(trail: dict[str, Any]) -> None:
    for note in trail["misses"]:
        print(f"  evidence not in a chunk with its span id: {note}")
    print(
        f"TRAIL: loaded {trail['loaded']}/{trail['files']} traces, {trail['runs']} runs, {trail['failed_runs']} "
        f"failed; rendered/raw {trail['rendered_chars'] / trail['raw_bytes']:.2f}; "
        f"{trail['seconds'] / (trail['raw_bytes'] / 1e6):.2f} s per MB (load+render+redact)"
    )
    print(
        f"TRAIL evidence survival: {trail['survived']}/{trail['eligible']} = {trail['survival']:.1%} (gold errors "
        f"{trail['gold_errors']}, evidence verbatim in the raw span {trail['eligible']}; goal ≥ 95 %)"
    )
    print(
        f"TRAIL retrieval (query = gold description): recall@5 {trail['recall_at_5']:.1%} (random "
        f"{trail['random_recall_at_5']:.1%}), recall@10 {trail['recall_at_10']:.1%} (random "
        f"{trail['random_recall_at_10']:.1%})"
    )


def print_who_and_when(ww: dict[str, Any]) -> None:
    for note in ww["label_notes"]:
        print(f"  who&when label/trace disagreement: {note}")
    print(
        f"Who&When: loaded {ww['loaded']}/{ww['files']} logs; rendered/raw "
        f"{ww['rendered_chars'] / ww['raw_bytes']:.2f}; {ww['seconds'] / (ww['raw_bytes'] / 1e6):.2f} s per MB"
    )
    print(
        f"Who&When: gold mistake_step renders as 'Step N' with the speaker's exact name: {ww['step_renders']:.1%} "
        f"(goal 100 %)"
    )
    print(
        f"Who&When: gold agent is that step's speaker (as labelled): {ww['gold_agent_is_the_step_speaker']:.1%}; "
        f"gold agent's name verbatim in the files: {ww['gold_agent_verbatim']:.1%}"
    )


def print_reading(reading: dict[str, Any]) -> None:
    for note in reading["misses"]:
        print(f"  evidence not in view inline: {note}")
    tok, usd = reading["stage1_input_tokens_per_trace"], reading["stage1_cost_usd_per_trace"]
    search = (
        "not measured (--no-server)"
        if reading["search_share"] is None
        else f"{reading['search_in_view']}/{reading['eligible']} = {reading['search_share']:.1%}"
    )
    print(
        f"TRAIL evidence in view of Stage 1: inline {reading['inline_in_view']}/{reading['eligible']} = "
        f"{reading['inline_share']:.1%} (goal ≥ 95 %); by search (chunks the local server returned) {search}"
    )
    print(
        f"TRAIL Stage 1 per trace (gpt-4o, worst case): inline {tok['inline']} input tokens ${usd['inline']:.3f}; "
        f"search {tok['search']} input tokens ${usd['search']:.3f}"
    )


def print_honesty(lines: dict[str, Any], honesty: dict[str, Any] | None) -> None:
    for note in (honesty or {}).get("dishonest", []) + lines["examples"]:
        print(f"  verified but not in the raw source: {note}")
    print(
        f"Every rendered line quoted (own run and the run before, {lines['quotes']} quotes): {lines['verified']} "
        f"verified, {lines['not_in_raw']} of them not in the"
        f" cited run's raw source (goal 0); the rule before 0.2: {lines['old_rule_verified']} verified, "
        f"{lines['old_rule_not_in_raw']} not in the raw source"
    )
    if honesty:
        print(
            f"Verification honesty ({honesty['traces']} traces end to end): "
            f"{honesty['in_raw']}/{honesty['verified_quoting']} verified quotes are in the cited run's raw source"
            f" = {honesty['share']:.1%} (goal 100 %); {honesty['verified']}/{honesty['claims']} claims verified"
        )
    else:
        print("Verification honesty end to end: not measured (--end-to-end adds it; the every-line figure covers it)")


def other_formats(shared: Path) -> str:
    """Runs loaded and rendered size for every eval or agent log of the newer formats (Inspect,
    τ-bench, SWE-agent, OpenHands, Agents SDK, tool-call transcripts) found under ../shared —
    found by a look at each file's first 64 KB, so the real traces are not read twice."""
    from refinery.traces import load_traces
    from refinery.traces.render import render_trace_files

    markers = (b'"samples"', b'"traj"', b'"trajectory"', b'"observation"', b'"span_data"', b'"tool_calls"', b"tool_use")
    rows = []
    for path in sorted(
        p for p in shared.rglob("*") if p.is_file() and p.suffix in (".json", ".jsonl", ".eval", ".traj")
    ):
        with path.open("rb") as f:
            head = f.read(1 << 16)
        if path.suffix not in (".eval", ".traj") and not any(m in head for m in markers):
            continue
        try:
            traces = load_traces(path)
        except Exception:  # noqa: BLE001 - a file of another kind: not counted
            continue
        fmt = traces[0].metadata.get("format")
        if fmt in (None, "otel", "langsmith", "langfuse") or (fmt == "plain" and b"tool" not in head):
            continue
        runs = sum(len(t.runs) for t in traces)
        size = sum(len(text) for t in traces for _, text in render_trace_files(t))
        rows.append(f"{path.relative_to(shared)} ({fmt}): {len(traces)} trace(s), {runs} runs, {size} rendered chars")
    return (
        "Other formats (Inspect, τ-bench, SWE-agent, OpenHands, Agents SDK, tool-call transcripts) in ../shared: "
        + ("; ".join(rows) if rows else "none found")
    )


async def served(
    eval_data: Path, *, with_server: bool, end_to_end: bool
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The measures that look at Stage 1 requests and (with the server) at analyses run end to end."""
    if not with_server:
        return await bench_reading(eval_data / "trail", None), None
    async with OpenAITestServer() as server:
        reading = await bench_reading(eval_data / "trail", server)
        if not end_to_end:
            return reading, None
        paths = sorted((eval_data / "trail" / "traces").glob("*/*.json")) + sorted(
            (eval_data / "who-and-when").glob("*/*.json")
        )
        server.responses.clear()
        server.response_bodies.clear()
        return reading, await bench_honesty(paths, server)


if __name__ == "__main__":
    raise SystemExit(main())
