"""The quick checks a big OTLP trace's load makes of every span give what the full ones give: its
nanosecond times read by `nanos_time` are exactly the datetimes `parse_time` makes of them (every
other value left to `parse_time`, so other shapes, and bad ones, are read and refused as before);
the ClickHouse layout told by one set operation; failure told by `error_of` alone; text that may
hold JSON read by the C scanner as `json.loads` reads it."""

from __future__ import annotations

import json
import random

from refinery.traces.common import maybe_json, nanos_time, parse_time
from refinery.traces.otel_columns import is_clickhouse_span
from refinery.traces.otel_span import hex_id, span_ids
from refinery.traces.otel_status import error_of, status_code


def _values(rng: random.Random) -> list:
    out: list = []
    for _ in range(20000):
        digits = "".join(rng.choice("0123456789") for _ in range(rng.choice([17, 18, 19, 19, 19, 20])))
        n = int(digits)
        out += [digits, n, -n, " " + digits, digits + "\n", "-" + digits, digits.replace("1", "١")]
    out += [10**17, 10**17 + 1, 10**19 - 1, 10**19, True, 1.7e18, "1700000000000000000", "0" * 19, None, ""]
    return out


def test_a_nanosecond_time_is_the_datetime_parse_time_makes_and_anything_else_is_left_to_it():
    rng = random.Random(37)
    quick = 0
    for value in _values(rng):
        made = nanos_time(value)
        if made is not None:
            quick += 1
            assert made == parse_time(value) and made.tzinfo == parse_time(value).tzinfo, value
            assert made.isoformat() == parse_time(value).isoformat()
    assert quick > 20000  # the 19-digit strings and their ints


def test_what_nanos_time_leaves_is_not_an_otlp_nanosecond_count():
    for value in ["0" * 19, "0170000000000000000", " 1700000000000000000", "1" * 20, "١" * 19, 10**17, 10**19, True]:
        assert nanos_time(value) is None


def test_the_clickhouse_layout_is_told_as_looking_for_each_marker_told_it():
    markers = ("span_name", "SpanName", "span_attributes", "SpanAttributes")
    rng = random.Random(3)
    keys = [*markers, "name", "attributes", "spanId", "SpanNameX", "span", ""]
    for _ in range(3000):
        span = {k: 1 for k in rng.sample(keys, rng.randint(0, 5))}
        assert is_clickhouse_span(span) == any(k in span for k in markers)
    assert not is_clickhouse_span(["span_name"]) and not is_clickhouse_span(None)


def test_a_span_has_failed_exactly_when_error_of_gives_an_error():
    codes = [None, 0, 1, 2, "1", "2", "OK", "ERROR", "error", "STATUS_CODE_ERROR", "STATUS_CODE_OK", "UNSET", True]
    events = [None, [], [{"name": "exception", "attributes": {"exception.message": "boom"}}], [{"name": "log"}]]
    for code in codes:
        for message in (None, "", "bad"):
            for status in ({"code": code, "message": message}, {"status_code": code}, code, None):
                for evs in events:
                    error = error_of(status, evs)
                    assert (error is not None) == (bool(error) or status_code(status) == "error")


def _json_loads_maybe(value):
    """`maybe_json` as it was: `json.loads` of the stripped text."""
    if isinstance(value, str):
        stripped = value.strip()
        if stripped[:1] in ("{", "[", '"') and stripped[-1:] in ("}", "]", '"'):
            try:
                return json.loads(stripped)
            except (ValueError, RecursionError):
                return value
    return value


def test_text_that_may_hold_json_is_read_as_json_loads_reads_it():
    """`maybe_json` parses by the C scanner alone: the same value as `json.loads` of the stripped
    text, and the text itself (the same object) wherever `json.loads` refuses it — extra data after
    the value, white space JSON does not count as such, bad escapes, nesting too deep."""
    rng = random.Random(41)
    parts = [
        "{",
        "}",
        "[",
        "]",
        '"',
        "a",
        "1",
        "-",
        ".5e3",
        " ",
        "\t",
        "\n",
        "\x1c",
        "\u2028",
        ",",
        ":",
        "\\",
        "\\u12",
        "\\ud800",
        "true",
        "null",
        "NaN",
        "Infinity",
        "é",
        "\x00",
    ]
    values: list = [None, 3, "", "[" * 100000 + "]" * 100000, '"' + "[" * 5000 + '"']
    for _ in range(30000):
        if rng.random() < 0.5:
            values.append("".join(rng.choice(parts) for _ in range(rng.randint(1, 12))))
        else:
            doc = json.dumps(rng.choice([{"q": "x y"}, [1, 2.5, None], "text", {"a": [{"b": "\u2028é"}]}]))
            values.append(rng.choice(["", " ", "\n\t", "\x1c"]) + doc + rng.choice(["", " ", "\x1c", "}", "]", ' "']))
    for value in values:
        got, expected = maybe_json(value), _json_loads_maybe(value)
        assert (got is value) == (expected is value), repr(value)
        assert json.dumps(got) == json.dumps(expected), repr(value)


def _span_ids_by_the_chains(span: dict) -> tuple:
    """`span_ids` as it was: every spelling's chain, each id through `hex_id`."""
    ctx = span.get("spanContext") or span.get("context") or {}
    ctx = ctx if isinstance(ctx, dict) else {}
    trace_id = span.get("traceId") or span.get("trace_id") or ctx.get("traceId") or ctx.get("trace_id")
    span_id = span.get("spanId") or span.get("span_id") or ctx.get("spanId") or ctx.get("span_id") or span.get("id")
    parent = span.get("parentSpanId") or span.get("parent_span_id") or span.get("parent_id") or span.get("parentId")
    if parent is None and isinstance(span.get("parentSpanContext"), dict):
        parent = span["parentSpanContext"].get("spanId")
    return hex_id(trace_id), hex_id(span_id), hex_id(parent)


def test_otlp_ids_read_directly_are_what_every_spellings_chain_reads():
    """Three hex ids under OTLP's own names are taken as they are; anything else (empty, `0x`,
    base64, numbers, other spellings beside them) is read by the chains, as before."""
    rng = random.Random(43)
    ids = ["ab12", "AB12" * 4, "0" * 16, "", None, "0xab12", "q80HHRDC7vc=", "xyz", 255, "ab 12", "é1", "ab12\n"]
    names = ["traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id", "id", "parentId"]
    for _ in range(20000):
        span = {name: rng.choice(ids) for name in names if rng.random() < 0.6}
        if rng.random() < 0.2:
            span["spanContext"] = {"traceId": rng.choice(ids), "spanId": rng.choice(ids)}
        if rng.random() < 0.1:
            span["parentSpanContext"] = {"spanId": rng.choice(ids)}
        assert span_ids(span) == _span_ids_by_the_chains(span), span
