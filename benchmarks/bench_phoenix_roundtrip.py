"""Does a real trace lose anything on its way through Phoenix?

Each TRAIL trace (real smolagents and CodeAct runs with OpenInference spans,
`../shared/eval-data/trail/traces`) is written as the OTLP/JSON an OpenInference exporter sends —
its spans, attributes, events and statuses; not the `logs` TRAIL's own store added, which no OTel
span carries — posted to a real `phoenix serve` (protobuf, `phoenix_send_otlp.py`), fetched back
with `phoenix:<project>/<trace-id>` and loaded. Compared with loading the OTLP/JSON that was sent:

- spans sent and spans back;
- runs whose id, parent, name, type, status, error, inputs, outputs, attributes, model, tokens
  and events are all equal, and for each of those fields how many runs differ;
- of the values the run files (what the model reads) show for the runs sent, how many the run
  files made through Phoenix show too; and traces whose run files are identical but for times.

Needs Phoenix (`REFINERY_PHOENIX` or `phoenix` on PATH; `pip install arize-phoenix` in a virtualenv
of its own) and `../shared`; says so and exits 0 without them.
Run: `python benchmarks/bench_phoenix_roundtrip.py [--limit N] [--show-diff]`.
"""

from __future__ import annotations

import argparse
import asyncio
import difflib
import json
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from refinery.core.models import Trace, TraceRun  # noqa: E402
from refinery.testing.openapi_spec import find_shared  # noqa: E402
from refinery.testing.phoenix import phoenix_executable, running_phoenix  # noqa: E402
from refinery.traces import load_trace  # noqa: E402
from refinery.traces.common import parse_time  # noqa: E402
from refinery.traces.otel_columns import parse_duration  # noqa: E402
from refinery.traces.render import render_trace_files  # noqa: E402
from refinery.traces.sources import load_trace_from  # noqa: E402

SENDER = Path(__file__).with_name("phoenix_send_otlp.py")
PROJECT = "trail-roundtrip"
_KINDS = {"internal": 1, "server": 2, "client": 3, "producer": 4, "consumer": 5}
_STATUS = {"unset": 0, "ok": 1, "error": 2}
FIELDS = (
    "id",
    "parent",
    "name",
    "type",
    "status",
    "error",
    "inputs",
    "outputs",
    "attributes",
    "model",
    "tokens",
    "events",
)


def _nanos(text: str) -> int:
    when = parse_time(text)
    assert when is not None
    return int(when.timestamp()) * 1_000_000_000 + when.microsecond * 1000


def _value(v: Any) -> dict[str, Any]:
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}
    if isinstance(v, float):
        return {"doubleValue": v}
    return {"stringValue": v if isinstance(v, str) else json.dumps(v)}


def _pairs(attrs: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "value": _value(v)} for k, v in attrs.items()]


def otlp_of_trail(raw: dict[str, Any]) -> dict[str, Any]:
    """A TRAIL trace (the ClickHouse exporter's nested rows) as OTLP/JSON, one resourceSpans a span."""
    out = []
    stack = list(raw["spans"])
    while stack:
        s = stack.pop(0)
        stack[:0] = s.get("child_spans") or []
        start = _nanos(s["timestamp"])
        took = parse_duration(s.get("duration"))
        span = {
            "traceId": s["trace_id"],
            "spanId": s["span_id"],
            "parentSpanId": s.get("parent_span_id") or "",
            "name": s["span_name"],
            "kind": _KINDS.get(str(s.get("span_kind")).lower(), 0),
            "startTimeUnixNano": str(start),
            "endTimeUnixNano": str(start + (int(took.total_seconds() * 1e6) * 1000 if took else 0)),
            "attributes": _pairs(s.get("span_attributes") or {}),
            "events": [
                {"timeUnixNano": str(_nanos(e["Timestamp"])), "name": e["Name"], "attributes": _pairs(e["Attributes"])}
                for e in s.get("events") or []
            ],
            "status": {
                "code": _STATUS.get(str(s.get("status_code")).lower(), 0),
                "message": s.get("status_message") or "",
            },
        }
        resource = {**(s.get("resource_attributes") or {}), "openinference.project.name": PROJECT}
        scope = {"name": s.get("scope_name") or "", "version": s.get("scope_version") or ""}
        out.append({"resource": {"attributes": _pairs(resource)}, "scopeSpans": [{"scope": scope, "spans": [span]}]})
    return {"resourceSpans": out}


def _fields(run: TraceRun) -> dict[str, Any]:
    events = [(e.get("name"), e.get("attributes")) for e in run.metadata.get("events") or [] if isinstance(e, dict)]
    return {
        "id": run.id,
        "parent": run.parent_run_id,
        "name": run.name,
        "type": run.run_type,
        "status": run.status,
        "error": run.error,
        "inputs": run.inputs,
        "outputs": run.outputs,
        "attributes": run.metadata.get("attributes"),
        "model": run.metadata.get("model"),
        "tokens": run.metadata.get("tokens"),
        "events": events,
    }


_TIME_LINE = re.compile(r"^- (start_time|end_time|duration_ms|project|span_kind): .*$", re.M)


def _rendered(trace: Trace) -> str:
    """The run files as the model reads them, less the lines that only say when (and which project)."""
    files = render_trace_files(trace)
    return _TIME_LINE.sub("", "\n".join(text for name, text in files if "_runs_" in name))


def _leaves(value: Any) -> list[str]:
    """The scalar values a field holds, as text, JSON strings opened: the same information however it
    is shaped (Phoenix stores a JSON-valued attribute as the object, and numbers as numbers)."""
    if isinstance(value, str):
        try:
            opened = json.loads(value)
        except ValueError:
            return [value]
        return _leaves(opened) if isinstance(opened, (dict, list)) else [value]
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in _leaves(v)]
    if isinstance(value, (list, tuple)):
        return [leaf for v in value for leaf in _leaves(v)]
    return [] if value is None else [str(value)]


def _same(a: Any, b: Any) -> bool:
    return sorted(_leaves(a)) == sorted(_leaves(b))


def compare(sent: Trace, back: Trace) -> dict[str, Any]:
    ours = {r.id: _fields(r) for r in sent.runs}
    theirs = {r.id: _fields(r) for r in back.runs}
    both = [i for i in ours if i in theirs]
    return {
        "runs": len(ours),
        "back": len(theirs),
        "equal": sum(1 for i in both if ours[i] == theirs[i]),
        "same": sum(1 for i in both if all(_same(ours[i][f], theirs[i][f]) for f in FIELDS)),
        "differ": {f: sum(1 for i in both if ours[i][f] != theirs[i][f]) for f in FIELDS},
        "lost": {f: sum(1 for i in both if not _same(ours[i][f], theirs[i][f])) for f in FIELDS},
    }


async def roundtrip(path: Path, server: Any, work: Path, show_diff: bool) -> dict[str, Any]:
    raw = json.loads(path.read_text())
    otlp = otlp_of_trail(raw)
    sent_file = work / f"{path.stem}.otlp.json"
    sent_file.write_text(json.dumps(otlp))
    spans = int(server.run_script(SENDER, server.url, str(sent_file)))
    server.wait_for_spans(PROJECT, raw["trace_id"], spans)
    sent = load_trace(sent_file)
    back = await load_trace_from(f"phoenix:{PROJECT}/{raw['trace_id']}", env={"PHOENIX_BASE_URL": server.url})
    row = {"trace": path.name, "spans": spans, **compare(sent, back)}
    a, b = _rendered(sent), _rendered(back)
    row["rendered_equal"] = a == b
    # every value the model reads of the runs sent, as it reads them through Phoenix
    values = {leaf for r in sent.runs for f, v in _fields(r).items() if f != "id" for leaf in _leaves(v)}
    shown = [v for v in values if len(v) > 3 and v in a]
    row["values_shown"], row["values_kept"] = len(shown), sum(v in b for v in shown)
    if show_diff and a != b:
        print("".join(list(difflib.unified_diff(a.splitlines(True), b.splitlines(True), n=1))[:60]))
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=None)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--show-diff", action="store_true")
    args = parser.parse_args()
    shared, phoenix = args.shared or find_shared(), phoenix_executable()
    if shared is None or phoenix is None:
        print(f"skipped: needs ../shared ({shared}) and Phoenix ({phoenix}; pip install arize-phoenix)")
        return 0
    paths = sorted((Path(shared) / "eval-data" / "trail" / "traces").rglob("*.json"))[: args.limit]
    rows = []
    with tempfile.TemporaryDirectory() as tmp, running_phoenix(phoenix, Path(tmp)) as server:
        began = time.perf_counter()
        for path in paths:
            row = asyncio.run(roundtrip(path, server, Path(tmp), args.show_diff))
            rows.append(row)
            shaped = {k: v for k, v in row["differ"].items() if v}
            lost = {k: v for k, v in row["lost"].items() if v}
            print(
                f"{row['trace']}: {row['spans']} spans sent, {row['back']} runs back; runs equal {row['equal']}, "
                f"same content {row['same']} of {row['runs']}"
                f"{'; shaped otherwise: ' + json.dumps(shaped) if shaped else ''}"
                f"{'; CONTENT DIFFERS: ' + json.dumps(lost) if lost else ''}; rendered values kept "
                f"{row['values_kept']}/{row['values_shown']}; rendering "
                f"{'identical' if row['rendered_equal'] else 'differs'}"
            )
        took = time.perf_counter() - began
    runs, equal, same = (sum(r[k] for r in rows) for k in ("runs", "equal", "same"))
    differ = {f: sum(r["differ"][f] for r in rows) for f in FIELDS}
    lost = {f: sum(r["lost"][f] for r in rows) for f in FIELDS}
    print(
        f"\n{len(rows)} TRAIL traces through Phoenix in {took:.0f} s: spans sent {sum(r['spans'] for r in rows)}, "
        f"runs back {sum(r['back'] for r in rows)}; runs equal {equal}/{runs}, same content {same}/{runs}; "
        f"shaped otherwise {json.dumps({k: v for k, v in differ.items() if v})}; content differing "
        f"{json.dumps({k: v for k, v in lost.items() if v})}; values rendered for the runs sent that the "
        f"rendering through Phoenix shows too {sum(r['values_kept'] for r in rows)}/"
        f"{sum(r['values_shown'] for r in rows)}; renderings identical but for times "
        f"{sum(r['rendered_equal'] for r in rows)}/{len(rows)}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
