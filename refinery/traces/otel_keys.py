"""What a span's attribute keys alone say about its run, worked out once for each set of keys: which
keys are its input and output messages and how they nest, its tools, its serialised inputs and
outputs, its model and token counts, and which it keeps as plain attributes. Pure.

Why: a run is made from each span on every pass over a big trace (and once more for each file
`plan` renders), and the spans of a trace repeat a few sets of keys (an LLM span of six messages
has the fourteen keys the next one has). Scanning, sorting, splitting and regrouping the keys of
every span again was most of what making an LLM span's run cost: about 40 of its 75 µs. With the
layout known, a message is one `dict(zip(fields, values))` and the rest a few lookups. The memo
holds keys and layouts only, never a value, and is bounded (`_MEMO_SIZE` sets of keys, `_MEMO_KEYS` keys).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from refinery.traces.otel_attributes import Recipe, message_recipe, messages_from, unflatten

__all__ = [
    "DUPLICATED_BY_MESSAGES",
    "INPUT_KEYS",
    "IO_KEYS",
    "MODEL_KEYS",
    "OUTPUT_KEYS",
    "SHOWN",
    "TOKEN_KEYS",
    "KeyLayout",
    "key_layout",
]

INPUT_KEYS = (
    "input.value",
    "gen_ai.prompt",
    "gen_ai.input.messages",
    "ai.prompt.messages",
    "ai.prompt",
    "ai.value",
    "ai.values",
    "gen_ai.tool.call.arguments",
    "input",
)
OUTPUT_KEYS = (
    "output.value",
    "gen_ai.completion",
    "gen_ai.output.messages",
    "ai.response.text",
    "ai.response.object",
    "ai.response.toolCalls",
    "ai.embedding",
    "ai.embeddings",
    "gen_ai.tool.call.result",
    "output",
)
MODEL_KEYS = ("llm.model_name", "gen_ai.response.model", "gen_ai.request.model", "ai.model.id")
TOKEN_KEYS = {
    "llm.token_count.prompt": "input_tokens",
    "llm.token_count.completion": "output_tokens",
    "llm.token_count.total": "total_tokens",
    "gen_ai.usage.input_tokens": "input_tokens",
    "gen_ai.usage.output_tokens": "output_tokens",
    "gen_ai.usage.prompt_tokens": "input_tokens",
    "gen_ai.usage.completion_tokens": "output_tokens",
    "ai.usage.promptTokens": "input_tokens",
    "ai.usage.completionTokens": "output_tokens",
    "ai.usage.inputTokens": "input_tokens",
    "ai.usage.outputTokens": "output_tokens",
}
DUPLICATED_BY_MESSAGES = ("input.value", "output.value", "input.mime_type", "output.mime_type")
# what a run's heading already shows (kind, model, tokens): not repeated among its attributes
SHOWN = frozenset({"openinference.span.kind", "gen_ai.operation.name", *MODEL_KEYS, *TOKEN_KEYS})
IO_KEYS = frozenset({*INPUT_KEYS, *OUTPUT_KEYS})
INPUT_PREFIX, OUTPUT_PREFIX, TOOLS_PREFIX = "llm.input_messages", "llm.output_messages", "llm.tools"


class MessageKeys:
    """The keys of a span's input (or output) messages, sorted, and how they nest: read the first time
    as `unflatten` reads any keys; met again, by their `Recipe` (made then, not before: the keys of a
    growing conversation's spans are each met once a pass, and making a recipe costs more than one
    use of it saves)."""

    __slots__ = ("keys", "prefix", "recipe", "uses")

    def __init__(self, prefix: str, keys: tuple[str, ...]) -> None:
        self.prefix, self.keys = prefix, keys
        self.uses = 0
        self.recipe: Recipe | None | bool = None  # False: the keys have no recipe (not OpenInference's shape)

    def read(self, attrs: dict[str, Any]) -> list[Any]:
        if not self.keys:
            return []
        recipe = self.recipe
        if recipe is None:
            self.uses += 1
            if self.uses == 1:
                return unflatten(attrs, self.prefix, list(self.keys))
            recipe = self.recipe = message_recipe(list(self.keys), len(self.prefix) + 1) or False
        made = messages_from(attrs, recipe) if recipe else None
        return made if made is not None else unflatten(attrs, self.prefix, list(self.keys))


@dataclass(frozen=True, slots=True)
class KeyLayout:
    """What one set of attribute keys says of the run, in the order the run's fields take them."""

    inputs: MessageKeys
    outputs: MessageKeys
    tools: tuple[str, ...]
    input_io: tuple[tuple[str, str], ...]  # a serialised input's key and its name among the inputs
    output_io: tuple[tuple[str, str], ...]
    model: tuple[str, ...]  # the model keys there, in `MODEL_KEYS`' order
    tokens: tuple[tuple[str, str], ...]  # the token keys there and their names
    rest: tuple[tuple[str, bool], ...]  # a kept attribute's key; True: kept only when it holds nothing

    def rest_of(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """The attributes the run keeps as its `metadata["attributes"]`: all but those it shows as
        its inputs, outputs (the messages, and the serialised values they duplicate), tools, model
        and tokens — an input or output only when it holds nothing."""
        return {k: attrs[k] for k, if_empty in self.rest if not if_empty or attrs[k] in (None, "")}


def key_layout(attrs: dict[str, Any]) -> KeyLayout:
    """The layout of `attrs`' keys, made once for each set of keys (in their order) the memo holds."""
    keys = tuple(attrs)
    layout = _LAYOUTS.get(keys)
    if layout is None:
        global _held
        if len(_LAYOUTS) >= _MEMO_SIZE or _held + len(keys) > _MEMO_KEYS:
            _LAYOUTS.clear()  # a trace of ever new keys costs what it did without the memo, no more memory
            _held = 0
        layout = _LAYOUTS[keys] = _layout(keys)
        _held += len(keys)
    return layout


_LAYOUTS: dict[tuple[Any, ...], KeyLayout] = {}
_MEMO_SIZE = 1024  # sets of keys
_MEMO_KEYS = 1 << 16  # keys in all: a long conversation's spans each hold hundreds
_held = 0  # keys in the sets the memo holds


def _layout(keys: tuple[str, ...]) -> KeyLayout:
    inputs: list[str] = []
    outputs: list[str] = []
    tools: list[str] = []
    other: list[str] = []
    for k in keys:  # (a long conversation's span has hundreds of keys: the prefixes are constants)
        if k.startswith("llm."):
            if k.startswith(_INPUT_DOT):
                inputs.append(k)
                continue
            if k.startswith(_OUTPUT_DOT):
                outputs.append(k)
                continue
            if k.startswith(_TOOLS_DOT):
                tools.append(k)
                continue
        other.append(k)
    inputs.sort()
    outputs.sort()
    present = set(other)  # (the serialised inputs, model and tokens are none of the message keys)
    messages = bool(inputs or outputs)
    return KeyLayout(
        inputs=MessageKeys(INPUT_PREFIX, tuple(inputs)),
        outputs=MessageKeys(OUTPUT_PREFIX, tuple(outputs)),
        tools=tuple(tools),
        input_io=_io_keys(INPUT_KEYS, present, bool(inputs)),
        output_io=_io_keys(OUTPUT_KEYS, present, bool(outputs)),
        model=tuple(k for k in MODEL_KEYS if k in present),
        tokens=tuple((k, name) for k, name in TOKEN_KEYS.items() if k in present),
        rest=tuple((k, k in IO_KEYS) for k in other if not (k in SHOWN or (messages and k in DUPLICATED_BY_MESSAGES))),
    )


_INPUT_DOT, _OUTPUT_DOT, _TOOLS_DOT = INPUT_PREFIX + ".", OUTPUT_PREFIX + ".", TOOLS_PREFIX + "."


def _io_keys(names: tuple[str, ...], present: set[str], messages: bool) -> tuple[tuple[str, str], ...]:
    """The serialised inputs (or outputs) there, each with its name among them. Structured messages
    win over the serialised `input.value` / `output.value` that holds the same conversation:
    rendering both doubled every LLM span and pushed the newest message out."""
    return tuple(
        (key, key.replace("gen_ai.", "").replace("ai.", "").replace(".value", ""))
        for key in names
        if key in present and not (messages and key in DUPLICATED_BY_MESSAGES)
    )
