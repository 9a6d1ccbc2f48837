"""A span's run read through the layout of its attribute keys (`otel_keys.KeyLayout`, worked out once
for each set of keys) is the run the span's keys scanned, sorted and regrouped every time made: the
same inputs, outputs and metadata, in the same key order, however often the same keys come again
and whatever the keys hold."""

from __future__ import annotations

import copy
import json
import random
from typing import Any

from refinery.core.models import TraceRun
from refinery.traces import otel_keys
from refinery.traces.common import maybe_json
from refinery.traces.otel import span_to_run
from refinery.traces.otel_attributes import message_recipe, messages_from
from refinery.traces.otel_keys import DUPLICATED_BY_MESSAGES, INPUT_KEYS, IO_KEYS, OUTPUT_KEYS, SHOWN, key_layout
from refinery.traces.otel_span import rest_attributes
from tests.test_load_skeleton import _walked as _walk  # `unflatten` by its general walk alone

_INDICES = ["0", "1", "2", "10", "00", "²", "", "3"]
_FIELDS = ["role", "content", "name", "0", "1", "a'b", 'q"\\\n', "\udc80", "{}", "message", ""]
_VALUES: list[Any] = ["", None, "text", '{"a": [1, 2]}', "[1", 0, 2.5, True, [1], {"a": 1}, {"0": 2}]


def _random_key(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.5:
        prefix = rng.choice(["llm.input_messages", "llm.output_messages", "llm.tools"])
        middle = rng.choice([".message.", ".message.", ".message.", ".", ".x."])
        field = rng.choice(_FIELDS) if rng.random() < 0.9 else "a.b"
        return f"{prefix}.{rng.choice(_INDICES)}{middle}{field}"
    if roll < 0.8:
        return rng.choice([*SHOWN, *IO_KEYS, *DUPLICATED_BY_MESSAGES, "tool.name", "gen_ai.tool.name"])
    return rng.choice(["llm", "llm.x", "input.", "gen_ai.system", "session.id", "llm.input_messages"])


def _random_span(rng: random.Random, keys: list[str]) -> dict[str, Any]:
    attributes = {k: rng.choice(_VALUES) for k in keys}
    return {"spanId": "ab12", "traceId": "cd34", "name": rng.choice(["", "llm"]), "attributes": attributes}


def _expected(attrs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None, dict[str, Any]]:
    """A run's inputs, outputs and metadata as each span's keys scanned and regrouped made them."""
    inputs_k = [k for k in attrs if k.startswith("llm.input_messages.")]
    outputs_k = [k for k in attrs if k.startswith("llm.output_messages.")]
    tools_k = [k for k in attrs if k.startswith("llm.tools.")]
    messages = bool(inputs_k or outputs_k)
    rest = {
        k: v
        for k, v in attrs.items()
        if not (
            k in SHOWN
            or k.startswith(("llm.input_messages.", "llm.output_messages.", "llm.tools."))
            or (messages and k in DUPLICATED_BY_MESSAGES)
            or (k in IO_KEYS and v not in (None, ""))
        )
    }

    def io(keys: tuple[str, ...], found: list[Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in keys:
            if found and key in DUPLICATED_BY_MESSAGES:
                continue
            if key in attrs and attrs[key] not in (None, ""):
                out[key.replace("gen_ai.", "").replace("ai.", "").replace(".value", "")] = maybe_json(attrs[key])
        if found:
            out["messages"] = found
        return out

    inputs = io(INPUT_KEYS, _walk(attrs, "llm.input_messages") if inputs_k else [])
    outputs = io(OUTPUT_KEYS, _walk(attrs, "llm.output_messages") if outputs_k else [])
    metadata: dict[str, Any] = {}
    model = next((attrs[k] for k in otel_keys.MODEL_KEYS if attrs.get(k)), None)
    if model:
        metadata["model"] = model
    tokens = {v: attrs[k] for k, v in otel_keys.TOKEN_KEYS.items() if attrs.get(k) is not None}
    if tokens:
        metadata["tokens"] = tokens
    tools = _walk(attrs, "llm.tools") if tools_k else []
    if tools:
        inputs["tools"] = tools
    if rest:
        metadata["attributes"] = rest
    return inputs, outputs or None, metadata


def _in_order(value: Any) -> str:
    return json.dumps(value, default=repr)  # dict key order counts: it is the rendering's


def test_a_spans_run_through_its_keys_layout_is_the_run_its_keys_regrouped_each_time_made():
    rng = random.Random(37)
    otel_keys._LAYOUTS.clear()
    key_sets = [[_random_key(rng) for _ in range(rng.randint(0, 12))] for _ in range(300)]
    key_sets += [
        [f"llm.input_messages.{i}.message.{f}" for i in range(n) for f in ("role", "content")] for n in range(8)
    ]
    for _ in range(4000):
        keys = rng.choice(key_sets)  # the same keys again and again: layouts and compiled recipes reused
        span = _random_span(rng, keys)
        run = span_to_run(copy.deepcopy(span), 0, None)
        inputs, outputs, metadata = _expected(copy.deepcopy(span)["attributes"])
        assert (run.inputs, run.outputs, run.metadata) == (inputs, outputs, metadata), span
        assert _in_order([run.inputs, run.outputs, run.metadata]) == _in_order([inputs, outputs, metadata]), span
        assert rest_attributes(span["attributes"]) == metadata.get("attributes", {})
        made = TraceRun(**{k: getattr(run, k) for k in run.model_fields_set})
        assert run == made and run.model_dump() == made.model_dump() and list(vars(run)) == list(vars(made))


def test_a_recipe_gives_the_walks_messages_whatever_its_keys_and_values_hold():
    """Fields with quotes, backslashes, new lines, lone surrogates and braces, read by a recipe again
    and again, give the walk's messages, each message's fields in the walk's order; a value that is an
    object leaves the shape to the walk."""
    rng = random.Random(38)
    for _ in range(500):
        n = rng.randint(1, 4)
        names = rng.sample([f for f in _FIELDS if f and "." not in f], rng.randint(1, 3))
        attrs = {f"p.{i}.message.{f}": rng.choice(["t", None, 3, [1], "x"]) for i in range(n) for f in names}
        keys = sorted(attrs)
        recipe = message_recipe(keys, 2)
        if recipe is None:  # fields all indices: a list, the walk's
            continue
        first = messages_from(attrs, recipe)
        assert first == _walk(attrs, "p")
        again = messages_from(attrs, recipe)
        assert again == first and [list(m) for m in again] == [list(m) for m in _walk(attrs, "p")]
        objected = {**attrs, keys[0]: {"a": 1}}
        assert messages_from(objected, recipe) is None and messages_from(dict(objected), recipe) is None


def test_layouts_are_kept_for_a_bounded_number_of_key_sets_and_keys(monkeypatch):
    monkeypatch.setattr(otel_keys, "_MEMO_SIZE", 8)
    monkeypatch.setattr(otel_keys, "_MEMO_KEYS", 40)
    otel_keys._LAYOUTS.clear()
    for i in range(50):
        key_layout({f"k{i}.{j}": 1 for j in range(i % 9)})
        held = sum(len(keys) for keys in otel_keys._LAYOUTS)
        assert len(otel_keys._LAYOUTS) <= 8 and held == otel_keys._held <= 40
    assert key_layout({"k49": 1, "input.value": "x"}) is key_layout({"k49": 2, "input.value": "y"})
