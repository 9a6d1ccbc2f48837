"""Reading with no hosted store (`--store none`) against reading from one: is the labelled evidence
in what the model is sent at least as often?

Over TRAIL's traces in `../shared/eval-data/trail/` (skipped when absent), each analysed end to end
(four stages) against the local test server twice: once where it has Files and Vector Stores
(`--store auto` → hosted: Stage 1 reads its group inline and searches the rest, stages 2–3 read
what `file_search` returns), once where it has none (`--store auto` → none: every stage given
inline what it reads). For each gold error whose evidence (first 80 characters, white space
normalised) is verbatim in the span it is labelled on (`bench_evidence.eligible_errors`):

- in view, any stage: the evidence stands in some request of the analysis under its own run's
  heading (inline text), or in a chunk `file_search` returned that carries the run's id;
- in view, stages 2–4: the same, counting only the requests after Stage 1;
- input tokens per trace (what the server counted, retrieved chunks included) and requests.

The stand-in model answers (a test double): what Stage 1 flags is the stand-in's, so the stages
2–4 figure shows the mechanism (failed and flagged runs read inline) more than a model's choice.

Run: `python benchmarks/bench_reading_modes.py [--shared PATH] [--limit N] [--json]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_evidence import eligible_errors, inline_sections, norm, returned_chunks, shared_folder  # noqa: E402

from refinery.analysis.staged_failure_analyst import StagedFailureAnalyst  # noqa: E402
from refinery.app.inputs import expectation_for  # noqa: E402
from refinery.testing.server import OpenAITestServer  # noqa: E402
from refinery.traces import load_trace  # noqa: E402
from refinery.wire.responses_client import ResponsesClient  # noqa: E402


def request_text(body: dict[str, Any]) -> str:
    """Every text a request carries (Responses input or chat messages)."""
    parts = [str(p.get("text", "")) for m in body.get("input") or [] for p in m.get("content") or []]
    return "\n".join(parts)


def in_view(ev: str, loc: str, texts: list[str], chunks: list[str]) -> bool:
    return any(ev in s.get(loc, "") for s in (inline_sections(t) for t in texts)) or any(
        ev in c and f"[run_id: {loc}" in c for c in chunks
    )


async def analyse(
    server: OpenAITestServer, trace: Any, store: str = "auto"
) -> tuple[list[str], list[str], list[str], int, str]:
    """(all request texts, stage 2–4 texts, stage 2–4 chunks, input tokens, reading) of one analysis
    (`store="hosted"` against the server playing OpenAI: on 127.0.0.1, auto would read inline)."""
    seen = len(server.response_bodies)
    async with ResponsesClient(api_key="sk-bench", base_url=server.base_url) as client:
        result = await StagedFailureAnalyst(client=client, store=store).analyze(trace, expectation_for(None, trace))
    bodies = server.response_bodies[seen:]
    responses = server.responses[seen:]
    later = [i for i, b in enumerate(bodies) if not b["text"]["format"]["name"].startswith("stage1")]
    texts = [request_text(b) for b in bodies]
    chunks_all = [norm(c) for c in returned_chunks(responses)]
    chunks_later = [norm(c) for c in returned_chunks([responses[i] for i in later])]
    tokens = sum(u.input_tokens for u in result.usage.values())
    reading = (result.stage_metadata.get("stage3") or {}).get("reading", "?")
    result.release()
    return texts + chunks_all, [texts[i] for i in later], chunks_later, tokens, reading


async def bench(root: Path, limit: int | None) -> dict[str, Any]:
    modes = {"hosted": {}, "none": {"hosted_store": False}}
    out: dict[str, Any] = {"traces": 0, "eligible": 0}
    for mode in modes:
        out[mode] = {"any_stage": 0, "stages_2_4": 0, "input_tokens": 0, "seconds": 0.0, "reading": set()}
    paths = sorted((root / "traces").glob("*/*.json"))
    async with OpenAITestServer(indexing_delay_s=0) as full, OpenAITestServer(**modes["none"]) as bare:
        servers = {"hosted": full, "none": bare}
        for path in paths:
            raw = json.loads(path.read_bytes())
            errors = eligible_errors(root, path, raw)
            if not errors:
                continue
            if limit is not None and out["traces"] >= limit:
                break
            trace = load_trace(path)
            out["traces"] += 1
            out["eligible"] += len(errors)
            for mode, server in servers.items():
                t0 = time.perf_counter()
                texts, later_texts, later_chunks, tokens, reading = await analyse(
                    server, trace, "hosted" if server is full else "auto"
                )
                row = out[mode]
                row["seconds"] += time.perf_counter() - t0
                row["input_tokens"] += tokens
                row["reading"].add(reading)
                for loc, ev in errors:
                    row["any_stage"] += in_view(ev, loc, texts, [t for t in texts if "[run_id:" in t])
                    row["stages_2_4"] += in_view(ev, loc, later_texts, later_chunks)
    n, e = out["traces"] or 1, out["eligible"] or 1
    for mode in modes:
        row = out[mode]
        row.update(
            any_stage_share=round(row["any_stage"] / e, 3),
            stages_2_4_share=round(row["stages_2_4"] / e, 3),
            input_tokens_per_trace=round(row["input_tokens"] / n),
            seconds=round(row["seconds"], 1),
            reading=sorted(row["reading"]),
        )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", help="the shared folder (default: ../shared)")
    parser.add_argument("--limit", type=int, help="only the first N traces with labelled evidence")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    shared = shared_folder(args.shared)
    if shared is None or not (shared / "eval-data" / "trail").is_dir():
        print("no ../shared/eval-data/trail: skipped")
        return 0
    result = asyncio.run(bench(shared / "eval-data" / "trail", args.limit))
    if args.json:
        print(json.dumps(result, indent=2))
    print(f"TRAIL: {result['traces']} traces, {result['eligible']} gold errors with verbatim evidence")
    for mode in ("hosted", "none"):
        r = result[mode]
        print(
            f"  store {mode:<6} (read {'/'.join(r['reading'])}): evidence in view, any stage "
            f"{r['any_stage']}/{result['eligible']} ({r['any_stage_share']:.1%}); stages 2-4 "
            f"{r['stages_2_4']}/{result['eligible']} ({r['stages_2_4_share']:.1%}); "
            f"{r['input_tokens_per_trace']} input tokens a trace; {r['seconds']} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
