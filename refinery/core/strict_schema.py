"""Strict-mode JSON schemas for Structured Outputs: check one, or make one from pydantic's output.

Why this exists: with `strict: true` the API only accepts a subset of JSON Schema, and it says so
with a 400 at request time. Checking (and generating) schemas locally turns that runtime failure
into a build-time one with a message that names the rule and the path. Pure functions, no I/O.

Rules (the public Structured Outputs guide): the root is an object and not `anyOf`; every object
lists `properties`, sets `additionalProperties: false` and requires every property; every array has
`items`; every node says what it is; no unsupported keywords; nesting ≤ 10; ≤ 5000 properties.
"""

from __future__ import annotations

import copy
from typing import Any

from refinery.errors import StrictSchemaError

UNSUPPORTED_KEYWORDS = frozenset(
    {
        "allOf",
        "not",
        "if",
        "then",
        "else",
        "dependentRequired",
        "dependentSchemas",
        "patternProperties",
        "unevaluatedProperties",
        "unevaluatedItems",
        "minLength",
        "maxLength",
        "minProperties",
        "maxProperties",
    }
)
# Keywords pydantic emits that carry no meaning for the model's output and are dropped.
_DROPPED = frozenset({"title", "default", "examples", "discriminator", "readOnly", "writeOnly"})
MAX_DEPTH = 10
MAX_PROPERTIES = 5000


def strict_problems(schema: Any) -> list[str]:
    """Every strict-mode rule `schema` breaks, one line each with its JSON path (empty when valid)."""
    problems: list[str] = []
    total = 0
    if not isinstance(schema, dict):
        return ["$: schema must be a JSON object"]
    if schema.get("type") != "object" or "anyOf" in schema:
        problems.append("$: root must be type object and not anyOf")

    def walk(node: Any, path: str, depth: int) -> None:
        nonlocal total
        if not isinstance(node, dict):
            problems.append(f"{path}: schema node is not an object")
            return
        for key in sorted(UNSUPPORTED_KEYWORDS & node.keys()):
            problems.append(f"{path}: unsupported keyword {key!r}")
        if "$ref" in node:
            return
        if not ({"type", "anyOf", "enum", "const"} & node.keys()):
            problems.append(f"{path}: node has no type/anyOf/$ref/enum/const")
        if depth > MAX_DEPTH:
            problems.append(f"{path}: nesting depth {depth} > {MAX_DEPTH}")
        types = node.get("type")
        types = types if isinstance(types, list) else [types]
        if "object" in types:
            props = node.get("properties")
            if not isinstance(props, dict):
                problems.append(f"{path}: object without properties")
                props = {}
            if node.get("additionalProperties") is not False:
                problems.append(f"{path}: additionalProperties must be false")
            missing = set(props) - set(node.get("required", []))
            if missing:
                problems.append(f"{path}: properties not in required: {sorted(missing)}")
            total += len(props)
            for name, sub in props.items():
                walk(sub, f"{path}.{name}", depth + 1)
        if "array" in types:
            if "items" not in node:
                problems.append(f"{path}: array schema missing items")
            else:
                walk(node["items"], f"{path}[]", depth + 1)
        for i, sub in enumerate(node.get("anyOf", [])):
            walk(sub, f"{path}|anyOf{i}", depth)

    walk(schema, "$", 1)
    for name, sub in (schema.get("$defs") or {}).items():
        walk(sub, f"$defs.{name}", 1)
    if total > MAX_PROPERTIES:
        problems.append(f"$: total object properties {total} > {MAX_PROPERTIES}")
    return problems


def ensure_strict(schema: Any) -> None:
    """Raise `StrictSchemaError` listing every broken rule, or return quietly."""
    problems = strict_problems(schema)
    if problems:
        raise StrictSchemaError(problems)


def make_strict(schema: dict[str, Any]) -> dict[str, Any]:
    """Turn a JSON schema (typically pydantic's `model_json_schema()`) into a strict-valid one.

    - `$ref`s are inlined (with their siblings merged), so no `$defs` remain; a recursive model
      cannot be inlined and is refused;
    - `oneOf` becomes `anyOf`; a one-element `allOf` is merged into its node;
    - every object is closed and lists every property in `required`; a property that was
      optional becomes a nullable union, so "optional" survives as "may be null";
    - keywords strict mode rejects or ignores (titles, defaults, length bounds…) are dropped;
      the pydantic model still enforces its own constraints when the output is validated.
    A free-form map (`dict[str, X]`) has no strict form and is refused with its path.
    """
    defs = schema.get("$defs", {}) or schema.get("definitions", {})
    out = _convert(copy.deepcopy(schema), defs, "$", ())
    out.pop("$defs", None)
    out.pop("definitions", None)
    ensure_strict(out)
    return out


def _resolve(ref: str, defs: dict[str, Any], path: str) -> tuple[str, dict[str, Any]]:
    prefix_options = ("#/$defs/", "#/definitions/")
    for prefix in prefix_options:
        if ref.startswith(prefix):
            name = ref[len(prefix) :]
            if name in defs:
                return name, defs[name]
    raise StrictSchemaError([f"{path}: cannot resolve $ref {ref!r}"])


def _nullable(node: dict[str, Any]) -> dict[str, Any]:
    if node.get("type") == "null":
        return node
    if any(isinstance(b, dict) and b.get("type") == "null" for b in node.get("anyOf", [])):
        return node
    return {"anyOf": [node, {"type": "null"}]}


def _convert(node: Any, defs: dict[str, Any], path: str, seen: tuple[str, ...]) -> Any:
    if not isinstance(node, dict):
        return node
    node = dict(node)
    if "$ref" in node:
        name, target = _resolve(node.pop("$ref"), defs, path)
        if name in seen:
            raise StrictSchemaError([f"{path}: recursive $ref to {name!r} cannot be inlined"])
        merged = {**copy.deepcopy(target), **{k: v for k, v in node.items() if k not in _DROPPED}}
        return _convert(merged, defs, path, seen + (name,))
    all_of = node.pop("allOf", None)
    if all_of is not None:
        if len(all_of) != 1:
            raise StrictSchemaError([f"{path}: allOf with {len(all_of)} parts has no strict form"])
        return _convert({**all_of[0], **node}, defs, path, seen)
    if "oneOf" in node:
        node["anyOf"] = node.pop("oneOf")
    for key in list(node):
        if key in _DROPPED or key in UNSUPPORTED_KEYWORDS:
            node.pop(key)
    node.pop("$defs", None)
    if "anyOf" in node:
        node["anyOf"] = [_convert(b, defs, f"{path}|anyOf{i}", seen) for i, b in enumerate(node["anyOf"])]
    types = node.get("type")
    types = types if isinstance(types, list) else [types]
    if "object" in types:
        extra = node.get("additionalProperties")
        props = node.get("properties")
        if not props and extra not in (None, False):
            raise StrictSchemaError([f"{path}: a free-form map has no strict form; use a list of key/value objects"])
        props = props or {}
        required = set(node.get("required", []))
        new_props = {}
        for name, sub in props.items():
            converted = _convert(sub, defs, f"{path}.{name}", seen)
            new_props[name] = converted if name in required else _nullable(converted)
        node["properties"] = new_props
        node["required"] = list(new_props)
        node["additionalProperties"] = False
    if "array" in types:
        if "items" not in node:
            raise StrictSchemaError([f"{path}: array without items has no strict form"])
        node["items"] = _convert(node["items"], defs, f"{path}[]", seen)
        for key in ("prefixItems",):
            node.pop(key, None)
    return node
