"""Rendering a big trace: thousands of spans, tens of MB, deterministic files. Prints a table."""

from __future__ import annotations

import json
import sys
import time
import tracemalloc
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _server import machine  # noqa: E402

from refinery.traces import load_trace  # noqa: E402
from refinery.traces.redact import RedactionReport, redact_text  # noqa: E402
from refinery.traces.render import render_trace_files  # noqa: E402


def otlp(n_spans: int, payload_chars: int) -> dict:
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    spans = []
    for i in range(n_spans):
        start = t0 + timedelta(milliseconds=10 * i)
        spans.append(
            {
                "traceId": "ab" * 16,
                "spanId": f"{i + 1:016x}",
                "parentSpanId": f"{(i // 10) + 1:016x}" if i else "",
                "name": f"step-{i}",
                "startTimeUnixNano": str(int(start.timestamp() * 1e9)),
                "endTimeUnixNano": str(int((start + timedelta(milliseconds=5)).timestamp() * 1e9)),
                "attributes": [
                    {"key": "openinference.span.kind", "value": {"stringValue": "TOOL" if i % 3 else "LLM"}},
                    {
                        "key": "input.value",
                        "value": {
                            "stringValue": json.dumps(
                                {"query": f"question {i} " + "lorem ipsum " * (payload_chars // 24)}
                            )
                        },
                    },
                    {"key": "output.value", "value": {"stringValue": "answer " * (payload_chars // 14)}},
                ],
                "status": {"code": 2, "message": "boom"} if i % 97 == 0 else {},
            }
        )
    return {
        "resourceSpans": [
            {"resource": {"attributes": []}, "scopeSpans": [{"scope": {"name": "bench"}, "spans": spans}]}
        ]
    }


def main() -> None:
    print(f"# render benchmark — {machine()}")
    print(
        "| spans | trace JSON (MB) | load (s) | render (s) | redact (s) | files | output (MB) | peak mem (MB) | "
        "deterministic |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for n, chars in ((1000, 4000), (5000, 4000), (5000, 12000)):
        data = otlp(n, chars)
        size_mb = len(json.dumps(data)) / 1e6
        tracemalloc.start()
        t = time.perf_counter()
        trace = load_trace(data)
        t_load = time.perf_counter() - t
        t = time.perf_counter()
        files = render_trace_files(trace)
        t_render = time.perf_counter() - t
        t = time.perf_counter()
        report = RedactionReport()
        [redact_text(text, report) for _, text in files]
        t_redact = time.perf_counter() - t
        peak = tracemalloc.get_traced_memory()[1] / 1e6
        tracemalloc.stop()
        same = files == render_trace_files(load_trace(data))
        out_mb = sum(len(x) for _, x in files) / 1e6
        print(
            f"| {n} | {size_mb:.1f} | {t_load:.2f} | {t_render:.2f} | {t_redact:.2f} | {len(files)} | {out_mb:.1f} | "
            f"{peak:.0f} | {same} |"
        )


if __name__ == "__main__":
    main()
