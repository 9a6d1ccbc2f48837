"""Post an OTLP/JSON trace (`{"resourceSpans": …}`, hex ids) to Phoenix as the protobuf it accepts.

Run with the Python Phoenix is installed in (it has `opentelemetry-proto`), not refinery's:
`python benchmarks/phoenix_send_otlp.py http://127.0.0.1:6006 trace.otlp.json`. Prints the number
of spans sent. Used by bench_phoenix_roundtrip.py.
"""

from __future__ import annotations

import base64
import json
import sys
import urllib.request

from google.protobuf.json_format import ParseDict
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

_ID_KEYS = ("traceId", "spanId", "parentSpanId")


def _ids_as_base64(data: object) -> object:
    """OTLP/JSON writes ids as hex; protobuf's JSON mapping (what ParseDict reads) wants base64."""
    if isinstance(data, dict):
        return {
            k: (base64.b64encode(bytes.fromhex(v)).decode() if k in _ID_KEYS and v else _ids_as_base64(v))
            for k, v in data.items()
        }
    if isinstance(data, list):
        return [_ids_as_base64(v) for v in data]
    return data


def main(url: str, path: str) -> int:
    with open(path, encoding="utf-8") as f:
        request = ParseDict(_ids_as_base64(json.load(f)), ExportTraceServiceRequest())
    body = request.SerializeToString()
    post = urllib.request.Request(
        url.rstrip("/") + "/v1/traces", data=body, headers={"Content-Type": "application/x-protobuf"}, method="POST"
    )
    with urllib.request.urlopen(post, timeout=120) as resp:
        resp.read()
    return sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)


if __name__ == "__main__":
    print(main(sys.argv[1], sys.argv[2]))
