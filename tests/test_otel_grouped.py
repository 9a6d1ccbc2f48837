"""A span's OTLP attribute pairs read by C loops (`string_attributes`, then `sorted_messages` over
the sorted keys) give exactly what reading them as before gives — `attributes_of`, then
`attribute_groups`, then `unflatten` of each group — whatever the pairs: message keys in any order,
with gaps, repeated, at other depths, with odd indices or values; bad values fail the same way;
and the runs made from them are the same runs."""

from __future__ import annotations

import copy
import json
import random

import pytest

from refinery.traces import otel_span
from refinery.traces.otel import span_to_run
from refinery.traces.otel_attributes import attributes_of, string_attributes, unflatten
from refinery.traces.otel_span import attribute_groups, span_attributes

_PREFIXES = ["llm.input_messages.", "llm.output_messages.", "llm.tools.", "llm.", "gen_ai.", ""]
_INDICES = ["0", "1", "2", "3", "9", "10", "11", "00", "01", "²", "٣", "", "x", "1.2"]
_FIELDS = ["role", "content", "name", "tool_calls", "0", "1", "", "a.b", "contents"]
_OTHER = [
    "input.value",
    "output.value",
    "input.mime_type",
    "openinference.span.kind",
    "llm.model_name",
    "llm.token_count.prompt",
    "gen_ai.request.model",
    "session.id",
    "tool.name",
]
_VALUES = [
    {"stringValue": "hi"},
    {"stringValue": ""},
    {"stringValue": '{"q": 1}'},
    {"intValue": "7"},
    {"intValue": "x"},
    {"doubleValue": 1.5},
    {"boolValue": True},
    {"arrayValue": {"values": [{"stringValue": "a"}, {"intValue": 2}]}},
    {"kvlistValue": {"values": [{"key": "k", "value": {"stringValue": "v"}}]}},
    {"string_value": "snake", "int_value": None},
    {"bytesValue": "AAE="},
    {},
    None,
    "plain",
    3,
]


def _key(rng: random.Random) -> str:
    prefix = rng.choice(_PREFIXES)
    if prefix.startswith(("llm.input", "llm.output")):
        if rng.random() < 0.85:  # mostly OpenInference's own shape, the rest anything near it
            return f"{prefix}{rng.choice(_INDICES[:7])}.message.{rng.choice(_FIELDS[:4])}"
        return prefix + rng.choice([f"{rng.choice(_INDICES)}.message.{rng.choice(_FIELDS)}", rng.choice(_INDICES)])
    if prefix == "llm.tools.":
        return f"{prefix}{rng.choice(_INDICES[:4])}.tool.{rng.choice(['json_schema', 'name'])}"
    return rng.choice(_OTHER) if rng.random() < 0.7 else prefix + rng.choice(["a", "b.c", "0"])


_TEXTS = [{"stringValue": t} for t in ("hi", "", '{"q": 1}', "a.b", "0", "é ✓", "[1]")]


def _pairs(rng: random.Random) -> list:
    values = _TEXTS if rng.random() < 0.7 else _VALUES  # mostly text, as an LLM span's messages are
    # each value its own object, as parsed JSON has them (the general walk may write into an object value)
    pairs = [{"key": _key(rng), "value": copy.deepcopy(rng.choice(values))} for _ in range(rng.randint(0, 14))]
    rng.shuffle(pairs)
    if rng.random() < 0.1 and pairs:  # a repeated key: the last one's value, the first one's place
        pairs.append({"key": rng.choice(pairs)["key"], "value": {"stringValue": "again"}})
    if rng.random() < 0.05:
        pairs.insert(rng.randrange(len(pairs) + 1), rng.choice([{"value": {}}, "pair", {"key": 5, "value": {}}]))
    if rng.random() < 0.05:  # a message whose value is an object, or a bad double
        pairs.append({"key": "llm.input_messages.4.message.role", "value": rng.choice([{"kvlistValue": {}}, {}])})
    return pairs


def _as_before(raw: object, pool: dict | None = None) -> tuple:
    attrs = attributes_of(raw, pool)
    inputs, outputs, tools, rest = attribute_groups(attrs)
    messages = (unflatten(attrs, p, k) if k else [] for p, k in (("llm.input_messages", inputs),))
    return (
        {k: v for k, v in attrs.items() if k not in {*inputs, *outputs, *tools}},
        *messages,
        unflatten(attrs, "llm.output_messages", outputs) if outputs else [],
        unflatten(attrs, "llm.tools", tools) if tools else [],
        rest,
    )


def _ordered(value: object) -> object:
    """A value with every dict's key order made visible (equality of dicts ignores it)."""
    return json.dumps(value, default=repr)


def test_one_pass_gives_the_attributes_messages_tools_and_rest_reading_them_as_before_gives():
    rng = random.Random(37)
    quick = 0
    for _ in range(4000):
        raw = _pairs(rng)
        attrs, *rest = span_attributes(copy.deepcopy(raw))
        before = _as_before(raw)
        kept = {k: v for k, v in attrs.items() if not k.startswith(("llm.input_messages.", "llm.output_messages."))}
        kept = {k: v for k, v in kept.items() if not k.startswith("llm.tools.")}
        assert _ordered((kept, *rest)) == _ordered(before), raw
        text = string_attributes(raw)
        quick += text is not None and otel_span._sorted_groups(text) is not None
    assert quick > 2000  # most of them took the one pass


def test_with_a_string_pool_the_attributes_are_read_as_before_and_the_pool_is_the_same():
    rng = random.Random(5)
    for _ in range(500):
        raw = _pairs(rng)
        quick_pool: dict = {}
        before_pool: dict = {}
        assert _ordered(span_attributes(copy.deepcopy(raw), quick_pool)[1:]) == _ordered(
            _as_before(raw, before_pool)[1:]
        )
        assert quick_pool == before_pool


@pytest.mark.parametrize(
    "raw",
    [
        [{"key": "llm.input_messages.0.message.role", "value": {"doubleValue": "not a number"}}],
        [{"key": "x", "value": {"arrayValue": [1]}}],
        [{"key": "llm.output_messages.1.message.content", "value": {"kvlistValue": [1]}}],
    ],
)
def test_a_bad_value_fails_the_one_pass_as_it_fails_attributes_of(raw):
    with pytest.raises(Exception) as before:
        attributes_of(raw)
    with pytest.raises(Exception) as quick:
        span_attributes(raw)
    assert (type(quick.value), str(quick.value)) == (type(before.value), str(before.value))


def _span(rng: random.Random, i: int) -> dict:
    span = {
        "traceId": "ab" * 16,
        "spanId": f"{i:016x}",
        "name": rng.choice(["llm", "tool", ""]),
        "startTimeUnixNano": str(1_700_000_000_000_000_000 + i),
        "attributes": _pairs(rng),
        "status": rng.choice([{"code": 1}, {"code": 2, "message": "boom"}, {}]),
    }
    return span


def test_runs_made_through_the_one_pass_are_the_runs_made_as_before(monkeypatch):
    rng = random.Random(11)
    spans = [_span(rng, i) for i in range(1500)]
    again = copy.deepcopy(spans)
    quick = []
    for i, s in enumerate(spans):
        try:
            quick.append(span_to_run(s, i, "t.json").model_dump_json())
        except Exception as exc:  # noqa: BLE001 - the same failure is what is compared
            quick.append(repr(exc))
    monkeypatch.setattr(otel_span, "string_attributes", lambda raw: None)
    before = []
    for i, s in enumerate(again):
        try:
            before.append(span_to_run(s, i, "t.json").model_dump_json())
        except Exception as exc:  # noqa: BLE001
            before.append(repr(exc))
    assert quick == before


def test_a_skeleton_read_through_the_quick_path_is_the_skeleton_read_as_before(monkeypatch):
    rng = random.Random(13)
    spans = [_span(rng, i) for i in range(1500)]
    again = copy.deepcopy(spans)

    def skeletons(spans: list) -> list:
        out = []
        for i, s in enumerate(spans):
            try:
                out.append(repr(otel_span.span_skeleton(s, i, "t.json", {"service.name": "x"})))
            except Exception as exc:  # noqa: BLE001 - the same failure is what is compared
                out.append(repr(exc))
        return out

    quick = skeletons(spans)
    monkeypatch.setattr(otel_span, "string_attributes", lambda raw: None)
    assert quick == skeletons(again)
