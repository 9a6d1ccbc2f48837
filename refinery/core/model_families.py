"""What a model family needs from a request: whether it reasons, and how much room to give it.

Why: reasoning models (the o-series, the gpt-5 family) count the tokens they think with against
`max_output_tokens`. A budget sized for the answer alone — Stage 1's 2,000 tokens — is often spent
on reasoning before any JSON is written, and the response comes back `incomplete`. So each stage
keeps its answer budget and a reasoning model gets an allowance on top, by effort. Pure.
"""

from __future__ import annotations

import re

from refinery.errors import UserInputError

# Reasoning models (o-series, gpt-5 family) reject `temperature`; the gpt-5 chat snapshots do not
# reason and accept it.
_REASONING_MODEL = re.compile(r"^(o\d+|gpt-5)(?!.*-chat)", re.IGNORECASE)

# `reasoning.effort` values in OpenAI's spec (`ReasoningEffort`), and the reasoning tokens allowed
# on top of a stage's answer budget at each. An unset effort is the API's default, medium.
REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
REASONING_ALLOWANCE: dict[str, int] = {
    "none": 0,
    "minimal": 1_000,
    "low": 2_000,
    "medium": 4_000,
    "high": 8_000,
    "xhigh": 16_000,
    "max": 32_000,
}
DEFAULT_EFFORT = "medium"


def is_reasoning_model(model: str) -> bool:
    """True for models that reason before answering (and reject sampling parameters)."""
    return bool(_REASONING_MODEL.match(model.rsplit("/", 1)[-1]))


def check_effort(effort: str | None) -> str | None:
    if effort is not None and effort not in REASONING_EFFORTS:
        raise UserInputError(f"reasoning effort must be one of {', '.join(REASONING_EFFORTS)}, got {effort!r}")
    return effort


def reasoning_allowance(model: str, effort: str | None) -> int:
    """The reasoning tokens a request to `model` at `effort` is given besides its answer."""
    return REASONING_ALLOWANCE[check_effort(effort) or DEFAULT_EFFORT] if is_reasoning_model(model) else 0


def output_budget(model: str, answer_tokens: int, effort: str | None = None) -> int:
    """`max_output_tokens` for an answer of up to `answer_tokens`: the answer plus, for a
    reasoning model, its reasoning allowance."""
    return answer_tokens + reasoning_allowance(model, effort)
