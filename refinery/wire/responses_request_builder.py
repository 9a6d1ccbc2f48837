"""Pure builders for `POST /v1/responses` bodies: (model, store, texts, schema) → dict.

Why a module of its own: the body is where hand-written integrations go wrong (the Chat
Completions `response_format`, `json_schema` nested under `format`, `text` parts instead of
`input_text`, `tool_resources`). Every body built here is checked in the test suite against the
`CreateResponse` schema of OpenAI's published OpenAPI document. No I/O happens here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from refinery.core.model_families import check_effort, is_reasoning_model
from refinery.core.strict_schema import ensure_strict
from refinery.errors import RequestBuildError

FILE_SEARCH_RESULTS_INCLUDE = "file_search_call.results"
_SCHEMA_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MIN_OUTPUT_TOKENS = 16  # the API refuses a smaller max_output_tokens

CANARY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"reply": {"type": "string"}},
    "required": ["reply"],
    "additionalProperties": False,
}


def _message(role: str, text: str) -> dict[str, Any]:
    return {"type": "message", "role": role, "content": [{"type": "input_text", "text": text}]}


def _check_common(model: str, schema_name: str, max_output_tokens: int, json_schema_obj: Any) -> None:
    if not isinstance(model, str) or not model.strip():
        raise RequestBuildError("model must be a non-empty string")
    if not isinstance(schema_name, str) or not _SCHEMA_NAME.match(schema_name):
        raise RequestBuildError(f"schema_name {schema_name!r} must be 1-64 characters of a-z, A-Z, 0-9, '_' or '-'")
    if isinstance(max_output_tokens, bool) or not isinstance(max_output_tokens, int) or max_output_tokens <= 0:
        raise RequestBuildError(f"max_output_tokens must be a positive integer, got {max_output_tokens!r}")
    if max_output_tokens < MIN_OUTPUT_TOKENS:
        raise RequestBuildError(f"max_output_tokens must be at least {MIN_OUTPUT_TOKENS}, got {max_output_tokens}")
    ensure_strict(json_schema_obj)


def _base_body(
    model: str,
    system_text: str,
    user_text: str,
    json_schema_obj: dict[str, Any],
    *,
    schema_name: str,
    max_output_tokens: int,
    temperature: float | None,
    reasoning_effort: str | None = None,
    family: str | None = None,
) -> dict[str, Any]:
    _check_common(model, schema_name, max_output_tokens, json_schema_obj)
    if not isinstance(user_text, str) or not user_text:
        raise RequestBuildError("user_text must be a non-empty string")
    messages = [_message("user", user_text)]
    if system_text:
        messages.insert(0, _message("system", system_text))
    body: dict[str, Any] = {
        "model": model,
        "input": messages,
        "text": {
            "format": {
                "type": "json_schema",
                "name": schema_name,
                "schema": json_schema_obj,
                "strict": True,
            }
        },
        "max_output_tokens": max_output_tokens,
    }
    family = family or model  # an Azure deployment's name says nothing: its base model does
    if temperature is not None and not is_reasoning_model(family):
        if not 0 <= temperature <= 2:
            raise RequestBuildError(f"temperature must be between 0 and 2, got {temperature}")
        body["temperature"] = temperature
    if check_effort(reasoning_effort) is not None and is_reasoning_model(family):
        body["reasoning"] = {"effort": reasoning_effort}  # other models refuse the parameter
    return body


def build_responses_body(
    model: str,
    vector_store_id: str,
    system_text: str,
    user_text: str,
    json_schema_obj: dict[str, Any],
    *,
    max_num_results: int = 8,
    max_output_tokens: int = 1000,
    temperature: float | None = 0.2,
    schema_name: str = "stage_output",
    filters: Mapping[str, Any] | None = None,
    reasoning_effort: str | None = None,
    family: str | None = None,
) -> dict[str, Any]:
    """A body that answers with strict JSON after searching one hosted vector store.

    `filters` is an attribute filter (`{"type": "eq", "key": …, "value": …}` or a compound
    `and`/`or`) placed on the `file_search` tool, so retrieval is restricted by the API itself.
    The retrieved chunks are requested back (`include`) so they can be kept as evidence.
    """
    if not isinstance(vector_store_id, str) or not vector_store_id.strip():
        raise RequestBuildError("vector_store_id must be a non-empty string")
    if isinstance(max_num_results, bool) or not isinstance(max_num_results, int) or not 1 <= max_num_results <= 50:
        raise RequestBuildError(f"max_num_results must be an integer from 1 to 50, got {max_num_results!r}")
    body = _base_body(
        model,
        system_text,
        user_text,
        json_schema_obj,
        schema_name=schema_name,
        max_output_tokens=max_output_tokens,
        temperature=temperature,
        reasoning_effort=reasoning_effort,
        family=family,
    )
    tool: dict[str, Any] = {
        "type": "file_search",
        "vector_store_ids": [vector_store_id],
        "max_num_results": max_num_results,
    }
    if filters is not None:
        _check_filter(filters, "filters")
        tool["filters"] = dict(filters)
    body["tools"] = [tool]
    body["include"] = [FILE_SEARCH_RESULTS_INCLUDE]
    return body


def build_responses_body_no_tools(
    model: str,
    system_text: str,
    user_text: str,
    json_schema_obj: dict[str, Any],
    *,
    max_output_tokens: int = 1000,
    temperature: float | None = 0.2,
    schema_name: str = "stage_output",
    reasoning_effort: str | None = None,
    family: str | None = None,
) -> dict[str, Any]:
    """A strict-JSON body with no tools: for a stage that only needs the prior stages' JSON."""
    return _base_body(
        model,
        system_text,
        user_text,
        json_schema_obj,
        schema_name=schema_name,
        max_output_tokens=max_output_tokens,
        temperature=temperature,
        reasoning_effort=reasoning_effort,
        family=family,
    )


def build_canary_test_body(model: str) -> dict[str, Any]:
    """The smallest body that proves key, base URL, model and strict JSON output all work."""
    return build_responses_body_no_tools(
        model,
        "",
        'Reply with the JSON object {"reply": "PONG"} and nothing else.',
        CANARY_SCHEMA,
        max_output_tokens=32,
        temperature=None,
        schema_name="canary",
    )


def with_user_text(body: Mapping[str, Any], user_text: str) -> dict[str, Any]:
    """A copy of `body` whose user message says `user_text` (used by the format-only re-ask)."""
    new = dict(body)
    new["input"] = [
        _message("user", user_text) if isinstance(m, Mapping) and m.get("role") == "user" else m
        for m in body.get("input", [])
    ]
    return new


def with_max_output_tokens(body: Mapping[str, Any], max_output_tokens: int) -> dict[str, Any]:
    """A copy of `body` with a different output budget."""
    return {**body, "max_output_tokens": max_output_tokens}


_COMPARISON_OPS = {"eq", "ne", "gt", "gte", "lt", "lte", "in", "nin"}


def _check_filter(f: Any, path: str) -> None:
    """Refuse a malformed attribute filter here rather than with a 400 later."""
    if not isinstance(f, Mapping):
        raise RequestBuildError(f"{path} must be an object, got {type(f).__name__}")
    kind = f.get("type")
    if kind in ("and", "or"):
        subs = f.get("filters")
        if set(f) != {"type", "filters"} or not isinstance(subs, list) or not subs:
            raise RequestBuildError(f"{path}: a compound filter is exactly {{type, filters: [...]}}")
        for i, sub in enumerate(subs):
            _check_filter(sub, f"{path}.filters[{i}]")
    elif kind in _COMPARISON_OPS:
        if set(f) != {"type", "key", "value"} or not isinstance(f.get("key"), str):
            raise RequestBuildError(f"{path}: a comparison filter is exactly {{type, key, value}}")
    else:
        raise RequestBuildError(f"{path}.type must be one of {sorted(_COMPARISON_OPS | {'and', 'or'})}, got {kind!r}")
