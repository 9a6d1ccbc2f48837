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


def truncate(text: str, limit: int) -> str:
    """`text` cut to about `limit` characters, keeping its head and its tail (see `truncate_parts`)."""
    if len(text) <= limit:
        return text
    return "".join(truncate_parts(text, limit))


def truncate_parts(text: str, limit: int) -> tuple[str, str, str]:
    """(head, note, tail) of `text` cut to about `limit` characters.

    The tail gets the larger share: in a log or a conversation the newest part is at the end,
    and that is where a failure usually shows. The note says how much was cut and where.
    """
    head = limit * 2 // 5
    tail = limit - head
    cut = len(text) - head - tail
    note = (
        f"\n… [truncated: {cut} of {len(text)} characters cut here "
        f"(characters {head + 1}–{head + cut}); the first {head} and last {tail} are shown] …\n"
    )
    return text[:head], note, text[len(text) - tail :]


def fence(text: str) -> str:
    fence = "```"
    while fence in text:
        fence += "`"
    return f"{fence}\n{text}\n{fence}"


def outline(value: Any, indent: str = "") -> str:
    """A value as indented `key: value` text with strings shown raw (never JSON-escaped: see
    the module docstring)."""
    lines: list[str] = []
    _outline_into(value, indent, lines)
    return "\n".join(lines)


def scalar(value: Any) -> str | None:
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


def _outline_into(value: Any, indent: str, lines: list[str]) -> None:
    simple = scalar(value)
    if simple is not None:
        lines.append(indent + simple)
        return
    if isinstance(value, str):
        lines.extend(indent + ln for ln in value.split("\n"))
        return
    items: Iterable[tuple[str, Any]] = value.items() if isinstance(value, dict) else ((f"- [{i}]", v) for i, v in enumerate(value))
    for key, item in items:
        label = key if isinstance(value, (list, tuple)) else f"{key}:"
        simple = scalar(item)
        if simple is not None:
            lines.append(f"{indent}{label} {simple}")
        else:
            lines.append(f"{indent}{label}")
            _outline_into(item, indent + "  ", lines)


def text_of(content: Any) -> str:
    """A message's content as text: strings as they are, content parts joined, the rest outlined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) for p in content):
        texts = [str(p.get("text", p.get("message_content", {}).get("text", "") if isinstance(p.get("message_content"), dict) else "")) for p in content]
        if all(texts):
            return "\n".join(texts)
    return outline(content)


def message_view(msg: Any) -> tuple[str, str]:
    """(role, text) of a chat message in any of the shapes exporters use."""
    if not isinstance(msg, dict):
        return "", text_of(msg)
    role = str(msg.get("role") or msg.get("type") or "")
    parts = []
    content = msg.get("content", msg.get("contents", msg.get("text")))
    if content not in (None, ""):
        parts.append(text_of(content))
    rest = {k: v for k, v in msg.items() if k not in ("role", "type", "content", "contents", "text") and v not in (None, "", [], {})}
    if rest:
        parts.append(outline(rest))
    return role, "\n".join(parts)


def digest(*texts: str) -> str:
    h = hashlib.blake2b(digest_size=12)
    for t in texts:
        h.update(t.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h.hexdigest()
