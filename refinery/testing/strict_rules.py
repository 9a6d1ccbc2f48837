"""The test server's own reading of Structured Outputs' strict-mode rules.

Why a second implementation: the server judges what refinery's client sends. If it judged with
the client's own `refinery.core.strict_schema`, a bug there would pass on both sides. This one
is written from OpenAI's documented rules alone, and is deliberately plain:

- the root is an object (not `anyOf`);
- every object has `properties`, `additionalProperties: false`, and lists every property in
  `required` (optional fields are nullable unions, not absent);
- every array has `items`;
- composition is `anyOf` only (no `oneOf`, `allOf`, `not`, `if`/`then`), and `$ref`s point into
  the schema's own `$defs`;
- at most 5 levels of nesting and 100 properties in all.
"""

from __future__ import annotations

from typing import Any

MAX_DEPTH = 5
MAX_PROPERTIES = 100
UNSUPPORTED = (
    "oneOf",
    "allOf",
    "not",
    "if",
    "then",
    "else",
    "dependentRequired",
    "dependentSchemas",
    "patternProperties",
    "unevaluatedProperties",
)


def strict_violations(schema: Any) -> list[str]:
    """Every rule `schema` breaks, each with the path where it happens (empty: acceptable)."""
    problems: list[str] = []
    if not isinstance(schema, dict):
        return ["(root): the schema must be an object"]
    if schema.get("type") != "object" or "anyOf" in schema:
        problems.append("(root): the root must be an object schema, not a union")
    defs = schema.get("$defs") or {}
    counter = [0]
    _check(schema, "(root)", 0, defs, problems, counter)
    for name, sub in defs.items():
        _check(sub, f"$defs/{name}", 0, defs, problems, counter)
    if counter[0] > MAX_PROPERTIES:
        problems.append(f"(root): {counter[0]} properties in all, at most {MAX_PROPERTIES} allowed")
    return problems


def _types(node: dict[str, Any]) -> set[str]:
    t = node.get("type")
    return {t} if isinstance(t, str) else set(t) if isinstance(t, list) else set()


def _check(node: Any, path: str, depth: int, defs: dict[str, Any], problems: list[str], counter: list[int]) -> None:
    if not isinstance(node, dict):
        problems.append(f"{path}: a schema must be an object")
        return
    for key in UNSUPPORTED:
        if key in node:
            problems.append(f"{path}: '{key}' is not supported")
    ref = node.get("$ref")
    if ref is not None:
        if not (isinstance(ref, str) and ref.startswith("#/$defs/") and ref.split("/")[-1] in defs) and ref != "#":
            problems.append(f"{path}: $ref {ref!r} does not point into $defs")
        return
    for i, option in enumerate(node.get("anyOf") or []):
        _check(option, f"{path}/anyOf/{i}", depth, defs, problems, counter)
    types = _types(node)
    if "object" in types:
        if depth >= MAX_DEPTH:
            problems.append(f"{path}: nested deeper than {MAX_DEPTH} objects")
        props = node.get("properties")
        if not isinstance(props, dict):
            problems.append(f"{path}: an object needs 'properties'")
            props = {}
        if node.get("additionalProperties") is not False:
            problems.append(f"{path}: 'additionalProperties' must be false")
        required = node.get("required") or []
        missing = [p for p in props if p not in required]
        if missing:
            problems.append(f"{path}: every property must be required; not required: {missing}")
        counter[0] += len(props)
        for name, sub in props.items():
            _check(sub, f"{path}/{name}", depth + 1, defs, problems, counter)
    if "array" in types:
        if "items" not in node:
            problems.append(f"{path}: an array needs 'items'")
        else:
            _check(node["items"], f"{path}/items", depth, defs, problems, counter)
    if not types and "anyOf" not in node and "enum" not in node and "const" not in node:
        problems.append(f"{path}: a schema needs a 'type' (or anyOf / enum / const)")
