"""OpenTelemetry attribute values as plain Python: OTLP/JSON `AnyValue`s, `{key, value}` lists, and
flattened `prefix.0.message.role` keys as the nested lists they encode. Pure."""

from __future__ import annotations

import sys
from typing import Any

StringPool = dict[str, str]


def otlp_value(value: Any) -> Any:
    """The plain value of an OTLP/JSON `AnyValue` (`{"stringValue": …}`, `{"intValue": "5"}`, …)."""
    if not isinstance(value, dict):
        return value
    if "stringValue" in value:
        return value["stringValue"]
    if "intValue" in value:
        try:
            return int(value["intValue"])
        except (TypeError, ValueError):
            return value["intValue"]
    if "doubleValue" in value:
        return float(value["doubleValue"])
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "arrayValue" in value:
        return [otlp_value(v) for v in (value["arrayValue"] or {}).get("values", [])]
    if "kvlistValue" in value:
        return {kv.get("key"): otlp_value(kv.get("value")) for kv in (value["kvlistValue"] or {}).get("values", [])}
    if "bytesValue" in value:
        return value["bytesValue"]
    return _snake_value(value)


# Protobuf's own JSON names (Python's `MessageToDict(preserving_proto_field_name=True)`, Phoenix's
# `spans/otlpv1`), where every kind may be present and all but one null.
_SNAKE_KINDS = ("string_value", "int_value", "double_value", "bool_value", "array_value", "kvlist_value", "bytes_value")


def _snake_value(value: dict[str, Any]) -> Any:
    kind = next((k for k in _SNAKE_KINDS if value.get(k) is not None), None)
    if kind is None:
        return None if any(k in value for k in _SNAKE_KINDS) else value
    inner = value[kind]
    if kind == "array_value":
        return [otlp_value(v) for v in inner.get("values") or []] if isinstance(inner, dict) else inner
    if kind == "kvlist_value":
        values = inner.get("values") or [] if isinstance(inner, dict) else []
        return {kv.get("key"): otlp_value(kv.get("value")) for kv in values if isinstance(kv, dict)}
    if kind == "int_value":
        try:
            return int(inner)
        except (TypeError, ValueError):
            return inner
    return inner


def attributes_of(raw: Any, pool: StringPool | None = None) -> dict[str, Any]:
    """Attributes as a flat dict, whether given as a dict or as OTLP `{key, value}` pairs.

    With a `pool`, equal string keys and values become one object across all the spans read with
    it. Why: an LLM span carries the whole conversation so far, so a trace of N calls holds each
    early message N times over; parsed, every copy was its own string.
    """
    if isinstance(raw, dict):
        attrs = dict(raw)
    elif isinstance(raw, list):
        attrs = {  # `otlp_value` of each; a text value (most attributes) read without the call
            str(kv["key"]): v["stringValue"]
            if type(v := kv.get("value")) is dict and "stringValue" in v
            else otlp_value(v)
            for kv in raw
            if isinstance(kv, dict) and "key" in kv
        }
    else:
        return {}
    if pool is None:
        return attrs
    return {pool.setdefault(k, k): pool.setdefault(v, v) if isinstance(v, str) else v for k, v in attrs.items()}


def unflatten(attrs: dict[str, Any], prefix: str, keys: list[str] | None = None) -> list[Any]:
    """`prefix.0.message.role`-style keys as a list of nested objects (the `message` wrapper dropped).
    `keys`: those of `attrs` that start with `prefix.`, when the caller has them (this sorts them)."""
    dotted = prefix + "."
    if keys is None:
        keys = [k for k in attrs if k.startswith(dotted)]
    if not keys:
        return []
    cut = len(dotted)
    keys.sort()  # each object's keys in the order of the sorted paths
    messages = _messages(attrs, keys, cut)
    if messages is not None:
        return messages
    root: dict[str, Any] = {}
    intern = sys.intern
    for key in keys:
        *parents, last = key[cut:].split(".")
        node = root
        for part in parents:
            nxt = node.get(part)
            if not isinstance(nxt, dict):
                nxt = node[intern(part)] = {}
            node = nxt
        node[intern(last)] = attrs[key]  # "role", "content", "0": one copy each
    items = _listify(root)
    if not isinstance(items, list):
        items = [items] if items else []
    return [i["message"] if isinstance(i, dict) and len(i) == 1 and "message" in i else i for i in items]


def _listify(node: dict[str, Any]) -> Any:
    """A dict whose keys are all indices as a list in index order; the dicts in it too."""
    # every key decimal digits, none empty (`isdecimal`: what `int` reads; "²" is a digit it refuses)
    if node and "".join(node).isdecimal() and all(node):
        return [_listify(v) if isinstance(v, dict) else v for v in (node[k] for k in sorted(node, key=int))]
    return {k: _listify(v) if isinstance(v, dict) else v for k, v in node.items()}


class Recipe:
    """OpenInference's `N.message.FIELD` keys of one prefix as `unflatten` nests them: every key, in
    message order (`keys`), and each message's field names, in order (`fields`). Made from the keys
    alone, so a layout (`otel_keys`) reads every span of the same keys by it, with no sort or split."""

    __slots__ = ("fields", "keys")

    def __init__(self, keys: tuple[str, ...], fields: tuple[tuple[str, ...], ...]) -> None:
        self.keys = keys
        self.fields = fields


def message_recipe(keys: list[str], cut: int) -> Recipe | None:
    """`unflatten`'s quick path for sorted `keys` (the prefix `cut` characters long), from the
    keys alone: None for any shape but `N.message.FIELD` — an index or field with a dot, indices
    that are not all decimal, a message whose fields are all indices (a list, as the general walk
    makes it) — which the general walk reads."""
    groups: dict[str, list[str]] = {}
    fields: dict[str, list[str]] = {}
    for key in keys:
        index, marker, field = key[cut:].partition(".message.")
        if not marker or "." in index or "." in field:
            return None
        if index not in groups:
            groups[index], fields[index] = [], []
        groups[index].append(key)
        fields[index].append(field)
    if not "".join(groups).isdecimal() or "" in groups:
        return None
    for names in fields.values():
        if "".join(names).isdecimal() and "" not in names:
            return None  # fields that are indices: a list, as the general walk makes it
    order = sorted(groups, key=int) if len(groups) > 1 else list(groups)
    return Recipe(
        tuple(k for i in order for k in groups[i]),
        tuple(tuple(sys.intern(f) for f in fields[i]) for i in order),  # one "role", "content" for every run
    )


def messages_from(attrs: dict[str, Any], recipe: Recipe) -> list[dict[str, Any]] | None:
    """The messages `recipe` says the keys hold, or None when a value is itself an object (the
    general walk nests into it)."""
    values = list(map(attrs.__getitem__, recipe.keys))
    if _has_object(values):
        return None
    it = iter(values)  # `zip` stops at a message's last field, taking no value of the next one
    return [dict(zip(names, it)) for names in recipe.fields]


_PLAIN_TYPES = frozenset({str, int, float, bool, type(None), list})


def _has_object(values: tuple[Any, ...] | list[Any]) -> bool:
    """Whether a value is a dict (of any kind); the usual all-plain answer told by one C pass."""
    return not _PLAIN_TYPES.issuperset(map(type, values)) and any(isinstance(v, dict) for v in values)


def _messages(attrs: dict[str, Any], keys: list[str], cut: int) -> list[Any] | None:
    """`unflatten`'s answer for OpenInference's own shape — every key `N.message.FIELD`, no value a
    dict, no message whose fields are all indices — built directly (a span's messages are most of
    what making its run costs); None for any other shape, which the general walk reads. (A set of
    keys met again is read by its `Recipe` instead: `otel_keys`.)"""
    groups: dict[str, dict[str, Any]] = {}
    intern = sys.intern
    for key in keys:
        index, marker, field = key[cut:].partition(".message.")
        value = attrs[key]
        if not marker or "." in index or "." in field or isinstance(value, dict):
            return None
        group = groups.get(index)
        if group is None:
            group = groups[index] = {}
        group[intern(field)] = value
    if not "".join(groups).isdecimal() or "" in groups:
        return None
    for group in groups.values():
        if "".join(group).isdecimal() and "" not in group:
            return None  # fields that are indices: a list, as the general walk makes it
    return [groups[i] for i in sorted(groups, key=int)] if len(groups) > 1 else list(groups.values())
