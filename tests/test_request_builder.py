"""The request builder emits bodies the real API accepts, and refuses ones it would reject."""

from __future__ import annotations

import pytest

from refinery.errors import RequestBuildError, StrictSchemaError
from refinery.wire.responses_request_builder import (
    build_canary_test_body,
    build_responses_body,
    build_responses_body_no_tools,
    is_reasoning_model,
    with_user_text,
)

SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "string"}, "items": {"type": "array", "items": {"type": "integer"}}},
    "required": ["answer", "items"],
    "additionalProperties": False,
}


def stage_body(**kw):
    return build_responses_body("gpt-4o", "vs_abc", "be careful", "analyse", SCHEMA, **kw)


def test_stage_body_has_the_responses_shape():
    body = stage_body()
    assert body["model"] == "gpt-4o"
    assert body["tools"] == [{"type": "file_search", "vector_store_ids": ["vs_abc"], "max_num_results": 8}]
    assert body["input"] == [
        {"type": "message", "role": "system", "content": [{"type": "input_text", "text": "be careful"}]},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "analyse"}]},
    ]
    assert body["text"] == {"format": {"type": "json_schema", "name": "stage_output", "schema": SCHEMA, "strict": True}}
    assert body["include"] == ["file_search_call.results"]
    assert body["temperature"] == 0.2
    assert body["max_output_tokens"] == 1000
    assert "json_schema" not in body["text"]["format"]
    assert "response_format" not in body and "messages" not in body


def test_filters_go_on_the_file_search_tool():
    f = {
        "type": "and",
        "filters": [{"type": "eq", "key": "group", "value": 2}, {"type": "eq", "key": "kind", "value": "trace"}],
    }
    body = stage_body(filters=f)
    assert body["tools"][0]["filters"] == f


@pytest.mark.parametrize(
    "body_factory",
    [
        lambda: stage_body(),
        lambda: stage_body(filters={"type": "eq", "key": "group", "value": 1}, max_num_results=3),
        lambda: build_responses_body_no_tools("gpt-4o", "sys", "user", SCHEMA),
        lambda: build_responses_body("o3-mini", "vs_1", "sys", "user", SCHEMA),
        lambda: build_canary_test_body("gpt-4o"),
    ],
    ids=["stage", "stage-filtered", "no-tools", "reasoning-model", "canary"],
)
def test_every_body_validates_against_the_official_spec(spec, body_factory):
    assert spec.validate(body_factory()) == []


def test_spec_check_catches_the_chat_completions_shape(spec):
    """Guards the guard: the folklore body must fail the spec check."""
    body = stage_body()
    body["text"]["format"] = {"type": "json_schema", "json_schema": {"name": "x", "strict": True, "schema": SCHEMA}}
    assert spec.validate(body)


@pytest.mark.parametrize("model", ["o1", "o3-mini", "o4-mini-2025-04-16", "gpt-5", "gpt-5-mini", "gpt-5.1"])
def test_reasoning_models_get_no_temperature(model):
    assert is_reasoning_model(model)
    assert "temperature" not in build_responses_body(model, "vs_1", "s", "u", SCHEMA)


@pytest.mark.parametrize("model", ["gpt-4o", "gpt-4.1-mini", "gpt-5-chat-latest"])
def test_sampling_models_keep_temperature(model):
    assert build_responses_body(model, "vs_1", "s", "u", SCHEMA, temperature=0.7)["temperature"] == 0.7


@pytest.mark.parametrize(
    ("schema", "rule"),
    [
        ({"type": "array", "items": {"type": "string"}}, "root must be type object"),
        (
            {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
            "additionalProperties must be false",
        ),
        (
            {
                "type": "object",
                "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
                "required": ["a"],
                "additionalProperties": False,
            },
            "properties not in required: ['b']",
        ),
        (
            {
                "type": "object",
                "properties": {"a": {"type": "array"}},
                "required": ["a"],
                "additionalProperties": False,
            },
            "$.a: array schema missing items",
        ),
        (
            {
                "type": "object",
                "properties": {"a": {"type": "string", "minLength": 2}},
                "required": ["a"],
                "additionalProperties": False,
            },
            "unsupported keyword 'minLength'",
        ),
        ({"type": "object"}, "object without properties"),
    ],
)
def test_non_strict_schemas_are_refused_naming_the_rule(schema, rule):
    with pytest.raises(StrictSchemaError) as exc:
        build_responses_body("gpt-4o", "vs_1", "s", "u", schema)
    assert any(rule in p for p in exc.value.problems), exc.value.problems
    assert rule.split(":")[-1].strip() in str(exc.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"vector_store_id": ""}, "vector_store_id"),
        ({"vector_store_id": "   "}, "vector_store_id"),
        ({"schema_name": "has space"}, "schema_name"),
        ({"schema_name": "x" * 65}, "schema_name"),
        ({"max_output_tokens": 0}, "max_output_tokens"),
        ({"max_output_tokens": -5}, "max_output_tokens"),
        ({"max_num_results": 0}, "max_num_results"),
        ({"filters": {"type": "like", "key": "a", "value": 1}}, "filters.type"),
    ],
)
def test_bad_arguments_are_refused(kwargs, message):
    args = {
        "model": "gpt-4o",
        "vector_store_id": "vs_1",
        "system_text": "s",
        "user_text": "u",
        "json_schema_obj": SCHEMA,
    }
    args.update({k: v for k, v in kwargs.items() if k in args})
    extra = {k: v for k, v in kwargs.items() if k not in args}
    with pytest.raises(RequestBuildError, match=message):
        build_responses_body(**args, **extra)


def test_canary_body_is_strict_and_tiny():
    body = build_canary_test_body("gpt-4o")
    fmt = body["text"]["format"]
    assert fmt["strict"] is True and fmt["name"] == "canary"
    assert fmt["schema"]["additionalProperties"] is False
    assert "tools" not in body and body["max_output_tokens"] <= 64


def test_with_user_text_replaces_only_the_user_message():
    body = stage_body()
    new = with_user_text(body, "again")
    assert new["input"][0] == body["input"][0]
    assert new["input"][1]["content"] == [{"type": "input_text", "text": "again"}]
    assert body["input"][1]["content"][0]["text"] == "analyse"
    assert new["tools"] == body["tools"]
