"""What a big chat log's `load_trace` and a pass over its runs cannot cost less than, in pure Python.

Issue 37 asks for `load_trace` + a pass over the runs at ≤ 4 × the CPU of `json.loads` + a pass over
the raw entries, at ≤ 0.2 × its memory. The memory bound keeps the steps in the file (a 30 MB log's
texts alone are above it), so the load and the pass each parse the file once. This script times,
in one process and alternating, the parts that any pure-Python reading under that bound pays, each
in its cheapest form (no checks, no error handling, blocks cut in advance):

- `json.loads` + a pass: the baseline;
- two parses: the file's ~1 MB blocks parsed by `json.loads`, twice (the load's, the pass's);
- the id's hash: each step dumped as `json.dumps(step, sort_keys=True)` dumps it (written out, as
  `plain._Digest.dump` does) and hashed (the id names folders: it must not change), and its fact;
- runs: a `TraceRun` made for each step (its fields' dict, the object, its four slots);

and refinery's own `load_trace` + pass. The floor is the sum of the three parts: what is left
between it and `load_trace` is refinery's own checks and bookkeeping; what lies between the floor
and 4 × can only come from making those parts in C.

Run: `python benchmarks/bench_chat_floor.py [--megabytes 30] [--repeat 7] [--path LOG.json]`.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import sys
import tempfile
import time
from collections.abc import Callable
from json.encoder import encode_basestring_ascii  # type: ignore[attr-defined]
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_scale import chat_log  # noqa: E402

from refinery.core.models import RunType, run_from_values  # noqa: E402
from refinery.traces import load_trace  # noqa: E402

BLOCK = 1 << 20


def blocks_of(path: Path) -> list[bytes]:
    """The log's steps as ~1 MB blocks of JSON array text (what the reader cuts as it scans)."""
    steps = [json.dumps(step) for step in json.loads(path.read_bytes())["history"]]
    out: list[bytes] = []
    part: list[str] = []
    size = 0
    for text in steps:
        part.append(text)
        size += len(text)
        if size > BLOCK:
            out.append(("[" + ",".join(part) + "]").encode())
            part, size = [], 0
    if part:
        out.append(("[" + ",".join(part) + "]").encode())
    return out


def parts(path: Path, blocks: list[bytes]) -> dict[str, Callable[[], Any]]:
    esc = encode_basestring_ascii
    given = frozenset(("id", "name", "run_type", "inputs", "outputs", "trace_id", "step", "metadata"))

    def baseline() -> int:
        data = json.loads(path.read_bytes())
        return sum(1 for _ in data["history"])

    def two_parses() -> int:
        return sum(len(json.loads(b)) for _ in range(2) for b in blocks)

    def id_hash() -> str:  # (blocks parsed once more here; that parse is subtracted below)
        digest, facts, known = hashlib.sha256(), bytearray(), {}
        for block in blocks:
            dumps = []
            for s in json.loads(block):
                content, name, role = s["content"], s["name"], s["role"]
                dumps.append(f'{{"content": {esc(content)}, "name": {esc(name)}, "role": {esc(role)}}}')
                facts.append(known.setdefault((role, name), len(known)))
            digest.update("".join(dumps).encode())
        return digest.hexdigest()

    def runs() -> int:
        made = 0
        for block in blocks:
            for i, s in enumerate(json.loads(block), made):
                values = {
                    "id": f"step-{i}",
                    "name": s["name"],
                    "run_type": RunType.LLM,
                    "inputs": {},
                    "outputs": {"content": s["content"]},
                    "start_time": None,
                    "end_time": None,
                    "error": None,
                    "parent_run_id": None,
                    "trace_id": "chat-0",
                    "dotted_order": None,
                    "metadata": {"role": s["role"]},
                    "step": i,
                    "status": None,
                }
                run_from_values(values, set(given))
            made = i + 1
        return made

    def refinery() -> int:
        return sum(1 for _ in load_trace(path).runs)

    return {"baseline": baseline, "two_parses": two_parses, "id_hash": id_hash, "runs": runs, "refinery": refinery}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--megabytes", type=float, default=30, help="size of the synthetic chat log (default 30)")
    ap.add_argument("--repeat", type=int, default=7, help="rounds, the best of each part kept (default 7)")
    ap.add_argument("--path", type=Path, help="a chat log {history: [{role, name, content}]} instead")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path = args.path or Path(tmp) / "chat.json"
        if args.path is None:
            path.write_text(json.dumps(chat_log(args.megabytes)))
        blocks = blocks_of(path)
        timed = parts(path, blocks)
        gc.collect()
        gc.freeze()  # the blocks held here are not walked by the collector
        best = {name: float("inf") for name in timed}
        for _ in range(args.repeat):
            for name, work in timed.items():
                t0 = time.process_time()
                work()
                best[name] = min(best[name], time.process_time() - t0)
    one_parse = best["two_parses"] / 2
    floor = {
        "two parses": best["two_parses"],
        "the id's dumps and hash, facts": best["id_hash"] - one_parse,
        "runs made": best["runs"] - one_parse,
    }
    base = best["baseline"]
    print(f"chat log {path.stat().st_size / 1e6 if args.path else args.megabytes:.0f} MB, {len(blocks)} blocks")
    print("| part | CPU s | × json.loads + pass |")
    print("|---|---|---|")
    print(f"| json.loads + a pass | {base:.3f} | 1.00 |")
    for name, cpu in floor.items():
        print(f"| {name} | {cpu:.3f} | {cpu / base:.2f} |")
    total = sum(floor.values())
    print(f"| **floor (sum)** | {total:.3f} | **{total / base:.2f}** |")
    print(f"| refinery's load_trace + pass | {best['refinery']:.3f} | {best['refinery'] / base:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
