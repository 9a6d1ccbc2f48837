"""Trace values as readable, quotable text. Pure functions.

Why not JSON: escaping turns every newline and quote of a tool output or a prompt into `\\n` and
`\\"`, so a sentence quoted from the trace would no longer occur in the rendered file, and
neither the model nor a reader could find it. Values are shown as indented `key: value` text
with strings raw; messages in any exporter's shape become (role, text); cuts keep head and tail.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from refinery.core.offload import breathe
from refinery.traces.redact import secret_field_value
from refinery.traces.source_text import source, truncate_parts


def truncate(text: str, limit: int) -> str:
    """`text` cut to about `limit` characters, keeping its head and its tail (see `truncate_parts`)."""
    if len(text) <= limit:
        return text
    return "".join(truncate_parts(text, limit))


def fence(text: str) -> str:
    fence = "```"
    while fence in text:
        fence += "`"
    return f"{fence}\n{text}\n{fence}"


def outline(value: Any, indent: str = "", *, mark: bool = False) -> str:
    """A value as indented `key: value` text with strings shown raw (never JSON-escaped: see
    the module docstring). With `mark`, each string value is marked as the trace's own text
    (`traces.source_text`); keys, list labels and numbers are refinery's presentation."""
    lines: list[str] = []
    _outline_into(value, indent, lines, mark)
    return "\n".join(lines)


def _marked(text: str, mark: bool) -> str:
    """A trace value marked as source (`source_text.source`: redacted first, while rendering)."""
    return source(text) if mark else text


def scalar(value: Any) -> str | None:
    """A value's one-line text, or None when it is shown as a block (a multi-line string, a non-empty
    object or list). Strings are asked about first: most values are."""
    if type(value) is str:
        return (value if value else '""') if "\n" not in value else None
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str) and "\n" not in value:
        return value if value else '""'
    if isinstance(value, (dict, list)) and not value:
        return "{}" if isinstance(value, dict) else "[]"
    if not isinstance(value, (str, dict, list, tuple)):
        return str(value)
    return None


def _scalar_line(value: Any, mark: bool) -> str | None:
    simple = scalar(value)
    if simple is None or not (mark and isinstance(value, str) and value):
        return simple
    return _marked(simple, mark)


def _outline_into(value: Any, indent: str, lines: list[str], mark: bool = False) -> None:
    simple = _scalar_line(value, mark)
    if simple is not None:
        lines.append(indent + simple)
        return
    if isinstance(value, str):  # multi-line: one marked block (its indentation is white space, folded when quoted)
        lines.append(_marked("\n".join(indent + ln for ln in value.split("\n")), mark))
        return
    items: Iterable[tuple[str, Any]] = (
        value.items() if isinstance(value, dict) else ((f"- [{i}]", v) for i, v in enumerate(value))
    )
    for key, item in items:
        label = key if isinstance(value, (list, tuple)) else f"{key}:"
        # a secret-named field's value goes whole, whatever it holds (a list, an object, spaces)
        hidden = None if isinstance(value, (list, tuple)) else secret_field_value(key, item, value)
        simple = hidden if hidden is not None else _scalar_line(item, mark)
        if simple is not None:
            lines.append(f"{indent}{label} {simple}")
        else:
            lines.append(f"{indent}{label}")
            _outline_into(item, indent + "  ", lines, mark)


def text_of(content: Any, *, mark: bool = False) -> str:
    """A message's content as text: strings as they are, content parts joined, the rest outlined
    (with `mark`, the trace's own text marked, see `outline`)."""
    if isinstance(content, str):
        return _marked(content, mark)
    if isinstance(content, list) and all(isinstance(p, dict) for p in content):
        texts = [
            str(
                p.get(
                    "text",
                    p.get("message_content", {}).get("text", "") if isinstance(p.get("message_content"), dict) else "",
                )
            )
            for p in content
        ]
        if all(texts):
            return "\n".join(_marked(t, mark) for t in texts)
    return outline(content, mark=mark)


MessageFields = tuple[str, Any, "dict[str, Any] | None"]  # role, content, the other fields (None: not a dict)


def message_fields(msg: Any) -> MessageFields:
    """(role, content, its other fields) of a chat message in any of the shapes exporters use, read
    once: a rendering shows a message plain (its conversation's digests) and marked (the file), and
    took its fields apart for each (`view_text`)."""
    if not isinstance(msg, dict):
        return "", msg, None
    role = str(msg.get("role") or msg.get("type") or "")
    content = msg.get("content", msg.get("contents", msg.get("text")))
    if msg.keys() <= _READ_KEYS:  # nearly every message: no other field, and no walk over its items
        return role, content, {}
    rest = {k: v for k, v in msg.items() if k not in _READ_KEYS and v not in (None, "", [], {})}
    return role, content, rest


_READ_KEYS = frozenset(("role", "type", "content", "contents", "text"))  # the fields `message_fields` reads


def view_text(fields: MessageFields, *, mark: bool = False) -> str:
    """The text of a message read by `message_fields` (with `mark`, the trace's own text marked)."""
    _, content, rest = fields
    if rest is None:
        return text_of(content, mark=mark)
    if not rest:  # the content alone, nearly every message: no parts to join
        if content in (None, ""):
            return ""
        if isinstance(content, str):
            return source(content) if mark else content
        return text_of(content, mark=mark)
    parts = []
    if content not in (None, ""):
        parts.append(text_of(content, mark=mark))
    if rest:
        parts.append(outline(rest, mark=mark))
    return "\n".join(parts)


def message_view(msg: Any, *, mark: bool = False) -> tuple[str, str]:
    """(role, text) of a chat message in any of the shapes exporters use."""
    fields = message_fields(msg)
    return fields[0], view_text(fields, mark=mark)


def digest(*texts: str) -> str:
    """The texts' digest, each followed by a NUL: hashed as one joined text, one encoding and one
    update rather than two updates a text (a rendering takes several a run; the same bytes, as a
    NUL is one byte and UTF-8 encodes each character on its own, surrogates too)."""
    breathe()  # hashing 2 KiB or more lets the GIL go and takes it back (see `core.offload`)
    joined = "\x00".join(texts) + "\x00" if texts else ""
    return hashlib.blake2b(joined.encode("utf-8", "surrogatepass"), digest_size=12).hexdigest()
