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
from pathlib import Path
from typing import Any

import pytest

from refinery.app.cli import amain

FIX = Path(__file__).parent / "fixtures"
# (as planted, the part that must never be written or sent)
SHAPES = [
    ("ghp_" + "Q7w8E9r0" * 4 + "Zz11", "ghp_" + "Q7w8E9r0" * 4 + "Zz11"),
    ("sk-proj-" + "Pl4nT3d0" * 4, "Pl4nT3d0" * 4),
    ("postgres://app:Hunter2Secret99@db.internal:5432/shop", "Hunter2Secret99"),
]
# keys whose values the loaders read as structure (times, kinds, parent links): left as they are
STRUCTURE = re.compile(r"time|timestamp|unixnano|kind|type|role|status|code|level|duration|^key$|parent", re.I)


def plant(value: Any, shapes: itertools.cycle, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: plant(v, shapes, k) for k, v in value.items()}
    if isinstance(value, list):
        return [plant(v, shapes, key) for v in value]
    if isinstance(value, str) and value and not STRUCTURE.search(key):
        if value.strip()[:1] in "{[":  # JSON inside a string (OTLP attributes): plant inside it
            try:
                return json.dumps(plant(json.loads(value), shapes, key))
            except ValueError:
                pass
        return f"{value} {next(shapes)[0]}"
    return value


def planted_trace(name: str, tmp_path: Path) -> Path:
    """The fixture with a secret in every string field, ids included (consistently: a run id is
    the same wherever it appears, its parent links and LangSmith's dotted order too)."""
    text = (FIX / name).read_text()
    data = json.loads(text)
    ids = set(re.findall(r'"(?:id|trace_id|traceId|spanId|span_id)": "([^"]+)"', text))
    shapes = itertools.cycle(SHAPES)
    planted = json.dumps(plant(data, shapes))
    for old in sorted(ids, key=len, reverse=True):  # ids (and the dotted orders that hold them), everywhere
        if not re.fullmatch(r"[0-9a-f]{16,32}", old):  # OTLP's hex ids must stay hex to parse
            planted = planted.replace(old, f"{old}-{SHAPES[0][0]}")
    path = tmp_path / name
    path.write_text(planted)
    return path


@pytest.mark.parametrize("name", ["langsmith_runs.json", "otlp_trace.json", "langfuse_export.json", "plain_chat.json"])
async def test_no_planted_secret_is_sent_or_written(openai_env, tmp_path, name):
    trace = planted_trace(name, tmp_path)
    assert sum(trace.read_text().count(part) for _, part in SHAPES) >= 8  # planted widely
    out = tmp_path / "out"
    argv = ["run", str(trace), "--expect", str(FIX / "expectation.json"), "--out", str(out), "--stages", "1-4"]
    assert await amain([*argv, "--keep-store"]) == 0  # kept: its files and their names are checked too
    gc.collect()

    sent: list[tuple[str, str]] = [(f"upload {f.filename}", f.filename) for f in openai_env.files.values()]
    sent += [(f"upload {f.filename}", f.data.decode("utf-8", "replace")) for f in openai_env.files.values()]
    sent += [(f"request {i}", json.dumps(b)) for i, b in enumerate(openai_env.response_bodies)]
    sent += [(f"store {s.id}", json.dumps([s.name, getattr(s, "metadata", None)])) for s in openai_env.stores.values()]
    written = [(f"path {p}", str(p)) for p in out.rglob("*")]
    written += [(f"file {p.name}", p.read_text(errors="replace")) for p in out.rglob("*") if p.is_file()]
    spools = Path(tempfile.gettempdir()).glob(f"refinery-files-{os.getpid()}-*/*")
    written += [(f"spool {p}", p.read_text(errors="replace")) for p in spools if p.is_file()]
    assert any(w.startswith("file report.html") for w, _ in written) and len(sent) > 4
    leaks = [(where, part) for where, text in sent + written for _, part in SHAPES if part in text]
    assert leaks == []
