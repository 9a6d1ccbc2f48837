"""What the runs of one trace share, gathered while they are rendered: system prompts and tool
definitions (shown once, in the index) and the conversation seen so far (so each LLM call shows
only its new messages). Pure.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from refinery.traces.text import digest


def _tool_name(tool: Any) -> str:
    """A tool definition's name, in the OpenAI, OpenInference (`tool.json_schema`) or bare shape."""
    if isinstance(tool, dict):
        for key in ("tool", "json_schema", "function"):
            inner = tool.get(key)
            if isinstance(inner, str):
                try:
                    inner = json.loads(inner)
                except ValueError:
                    inner = None
            if isinstance(inner, dict):
                name = _tool_name(inner)
                if name:
                    return name
        if isinstance(tool.get("name"), str):
            return tool["name"]
    return ""


def _decoded_tool(tool: Any) -> Any:
    """OpenInference's `{tool: {json_schema: "<JSON text>"}}` as the definition it encodes."""
    if isinstance(tool, dict) and set(tool) == {"tool"} and isinstance(tool["tool"], dict):
        inner = tool["tool"]
        if set(inner) == {"json_schema"} and isinstance(inner["json_schema"], str):
            try:
                return json.loads(inner["json_schema"])
            except ValueError:
                return tool
    return tool


@dataclass
class SharedContext:
    """What runs share and the index shows once; filled while the runs are rendered, in order."""

    prompts: dict[str, tuple[str, str]]  # digest → (label, text)
    tools: dict[str, tuple[str, Any]]  # digest → (name, definition)
    history: dict[str, tuple[str, str, int]]  # chain digest → (run id, run label, message count)

    def prompt_label(self, text: str, first_use: str) -> str:
        d = digest(text)
        if d not in self.prompts:
            self.prompts[d] = (f"P{len(self.prompts) + 1} (first used in {first_use})", text)
        return self.prompts[d][0].split(" ")[0]

    def tool_names(self, tools: list[Any]) -> list[str]:
        names = []
        for tool in tools:
            tool = _decoded_tool(tool)
            name = _tool_name(tool) or f"tool {len(self.tools) + 1}"
            d = digest(name, json.dumps(tool, sort_keys=True, default=str))
            self.tools.setdefault(d, (name, tool))
            names.append(name)
        return names


def conversation_chain(messages: list[tuple[str, str]]) -> list[str]:
    """Digest of each prefix of a conversation: `out[k]` identifies messages[0..k]."""
    out: list[str] = []
    prev = ""
    for role, text in messages:
        prev = digest(prev, role, text)
        out.append(prev)
    return out
