"""Secrets planted in every field of a trace — names, ids, the trace id, inputs, outputs, attributes,
metadata — in each of the four formats: none reaches an upload, a request body, the store, an
artifact, the report or the spool on disk."""

from __future__ import annotations

import gc
import itertools
import json
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from refinery.app.cli import amain
from tests.secret_shapes import PLANTS

FIX = Path(__file__).parent / "fixtures"
# (as planted, the part that must never be written or sent): every shape of the catalogue, and
# one shape of the organisation's own (`--redact-pattern`)
CUSTOM = ("ticket ACME-ZZ-0042-SECRET7", "ACME-ZZ-0042-SECRET7")
SHAPES = [(text, part) for _, text, part in PLANTS] + [CUSTOM]
ID_SHAPE = "ghp_" + "Q7w8E9r0" * 4 + "Zz11"  # planted into ids too
# where a shape goes in a value: after it, before it, on a line before it, on a line of its own
OFFSETS = ["{value} {shape}", "{shape} {value}", "{shape}\n{value}", "{value}\n{shape}\nmore"]
# keys whose values the loaders read as structure (times, kinds, parent links): left as they are
STRUCTURE = re.compile(
    r"time|timestamp|unixnano|kind|type|role|status|code|level|duration|^key$|parent|_at$|^event$|^object$|^model$|completed|created|^uuid$|^sample_id$",
    re.I,
)


def _leaves(value: Any, key: str = "") -> int:
    if isinstance(value, dict):
        return sum(_leaves(v, k) for k, v in value.items())
    if isinstance(value, list):
        return sum(_leaves(v, key) for v in value)
    return int(isinstance(value, str) and bool(value) and not STRUCTURE.search(key))


def plant(value: Any, shapes: itertools.cycle, per: int, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: plant(v, shapes, per, k) for k, v in value.items()}
    if isinstance(value, list):
        return [plant(v, shapes, per, key) for v in value]
    if isinstance(value, str) and value and not STRUCTURE.search(key):
        if value.strip()[:1] in "{[":  # JSON inside a string (OTLP attributes): plant inside it
            try:
                return json.dumps(plant(json.loads(value), shapes, per, key))
            except ValueError:
                pass
        for _ in range(per):
            shape, offset = next(shapes)
            value = offset.format(value=value, shape=shape[0])
        return value
    return value


def planted(data: Any) -> Any:
    """`data` with every shape planted at least twice, at each offset in turn."""
    per = -(-2 * len(SHAPES) // max(_leaves(data), 1))
    return plant(data, itertools.cycle(zip(SHAPES, itertools.cycle(OFFSETS))), per)


def planted_trace(name: str, tmp_path: Path) -> Path:
    """The fixture with secrets in every string field, ids included (consistently: a run id is
    the same wherever it appears, its parent links and LangSmith's dotted order too)."""
    text = (FIX / name).read_text()
    data = [json.loads(line) for line in text.splitlines() if line.strip()] if name.endswith("l") else json.loads(text)
    ids = set(re.findall(r'"(?:id|trace_id|traceId|spanId|span_id)": "([^"]+)"', text))
    out = json.dumps(planted(data))
    for old in sorted(ids, key=len, reverse=True):  # ids (and the dotted orders that hold them), everywhere
        if re.fullmatch(r"[0-9a-f]{16,32}", old):  # OTLP's hex ids must stay hex to parse
            continue
        if len(old) >= 8:
            out = out.replace(old, f"{old}-{ID_SHAPE}")
        else:  # a short id ("a1") would match inside the planted shapes: whole values only
            out = out.replace(f'"{old}"', f'"{old}-{ID_SHAPE}"')
    path = tmp_path / name
    path.write_text(out)
    return path


def planted_inputs(tmp_path: Path) -> list[str]:
    """--expect, --prompts and --evals files, each holding every shape."""
    expect = tmp_path / "expect.json"
    expect.write_text(json.dumps(planted(json.loads((FIX / "expectation.json").read_text()))))
    every = "\n".join(f"{i}: {text}" for i, (text, _) in enumerate(SHAPES))
    (tmp_path / "prompt.md").write_text(f"You are the refund agent.\n{every}\n")
    (tmp_path / "eval.py").write_text(f'"""Checks the refund."""\nNOTES = """\n{every}\n"""\n')
    return ["--expect", str(expect), "--prompts", str(tmp_path / "prompt.md"), "--evals", str(tmp_path / "eval.py")]


def _strings(value: Any) -> Iterator[str]:
    """Every string in a request body, decoded (a secret escaped by JSON would not match)."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, str):
        yield value


def _picked(trace: Path, pick: list[str]) -> list[str]:
    """`--sample ID` with the id as planted (an Inspect sample's id holds secrets too)."""
    if not pick:
        return pick
    data = json.loads(trace.read_text())
    samples = data.get("samples", []) if isinstance(data, dict) else []
    planted_id = next((str(s["id"]) for s in samples if pick[1] in str(s.get("id", ""))), pick[1])
    return [pick[0], planted_id]


FORMATS = [
    ("langsmith_runs.json", []),
    ("otlp_trace.json", []),
    ("langfuse_export.json", []),
    ("plain_chat.json", []),
    ("openai_agents_trace.json", []),
    ("phoenix_spans.json", []),
    ("inspect_log.json", ["--sample", "order-42"]),  # as planted: see `_picked`
    ("taubench_results.json", ["--sample", "12"]),
    ("langsmith_runs.jsonl", []),
    ("langsmith_ingest.json", []),
    ("otel_nested.json", []),
    ("otel_span_list.json", []),
    ("otel_attribute_map.json", []),
    ("phoenix_spans_otlpv1.json", []),
    ("clickhouse_camel_rows.json", []),
    ("clickhouse_snake_nested.json", []),
    ("openhands_events.json", []),
    ("swe_agent.traj", []),
    ("anthropic_tool_transcript.json", []),
    ("openai_tool_transcript.json", []),
    ("step_log_wrapped.json", []),
    ("unknown_with_messages.json", []),
]


@pytest.mark.parametrize(("name", "pick"), FORMATS, ids=[name for name, _ in FORMATS])
async def test_no_planted_secret_is_sent_or_written(openai_env, tmp_path, name, pick):
    trace = planted_trace(name, tmp_path)
    text = trace.read_text()
    assert all(part in text or json.dumps(part)[1:-1] in text for _, part in SHAPES)  # every shape planted
    out = tmp_path / "out"
    argv = ["run", str(trace), *_picked(trace, pick), *planted_inputs(tmp_path), "--out", str(out), "--stages", "1-4"]
    argv += ["--redact-pattern", r"ACME-[A-Z]{2}-\d{4}-\w+"]
    assert (
        await amain([*argv, "--keep-store", "--store", "hosted"]) == 0
    )  # kept: its files and their names are checked too
    gc.collect()

    sent: list[tuple[str, str]] = [(f"upload {f.filename}", f.filename) for f in openai_env.files.values()]
    sent += [(f"upload {f.filename}", f.data.decode("utf-8", "replace")) for f in openai_env.files.values()]
    sent += [(f"request {i}", "\n".join(_strings(b))) for i, b in enumerate(openai_env.response_bodies)]
    sent += [(f"store {s.id}", json.dumps([s.name, getattr(s, "metadata", None)])) for s in openai_env.stores.values()]
    written = [(f"path {p}", str(p)) for p in out.rglob("*")]
    written += [(f"file {p.name}", p.read_text(errors="replace")) for p in out.rglob("*") if p.is_file()]
    spools = Path(tempfile.gettempdir()).glob(f"refinery-files-{os.getpid()}-*/*")
    written += [(f"spool {p}", p.read_text(errors="replace")) for p in spools if p.is_file()]
    assert any(w.startswith("file report.html") for w, _ in written) and len(sent) > 4
    parts = [part for _, part in SHAPES] + [ID_SHAPE]
    leaks = [(where, part) for where, text in sent + written for part in parts if part in text]
    assert leaks == []
