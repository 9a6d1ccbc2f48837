"""How much a request may hold: each model's context window, and the input budget refinery keeps.

Why a budget well inside the window: a stage's input is its prompt, the JSON of the stages before
it, and the chunks `file_search` adds — which the client cannot count before the call. Pasting a
big trace's whole stage 1 into stage 2 once produced 300k-token requests for a 128k model, failing
after the stage 1 calls were already paid for. So each request's known input plus an allowance
for retrieved chunks must fit a budget (by default half the window); what does not fit is reduced
first (`agents.condense`).
"""

from __future__ import annotations

from collections.abc import Mapping

# Input context windows in tokens (OpenAI's model pages); snapshots use their family's window.
CONTEXT_WINDOWS: dict[str, int] = {
    "gpt-4o": 128_000,
    "gpt-4o-mini": 128_000,
    "gpt-4.1": 1_047_576,
    "gpt-4.1-mini": 1_047_576,
    "gpt-4.1-nano": 1_047_576,
    "gpt-5": 400_000,
    "gpt-5-mini": 400_000,
    "gpt-5-nano": 400_000,
    "o3": 200_000,
    "o4-mini": 200_000,
}
DEFAULT_WINDOW = 128_000  # an unknown model is assumed to be no bigger than gpt-4o
DEFAULT_BUDGET_SHARE = 0.5
CHUNK_TOKENS = 800  # one file_search chunk at the upload's chunking strategy


def context_window(model: str, overrides: Mapping[str, int] | None = None) -> int:
    """The model's window: an override, else the longest family prefix in the table, else the default."""
    table = {**CONTEXT_WINDOWS, **dict(overrides or {})}
    name = model.rsplit("/", 1)[-1]
    families = [f for f in table if name == f or name.startswith(f + "-")]
    return table[max(families, key=len)] if families else DEFAULT_WINDOW


def input_budget(model: str, *, window: int | None = None, share: float = DEFAULT_BUDGET_SHARE) -> int:
    """The most input tokens one request may carry, known text and retrieved chunks together."""
    return int((window or context_window(model)) * share)


def chunk_allowance(max_num_results: int) -> int:
    """What `file_search` may add to a request: its result count times one chunk."""
    return max(0, max_num_results) * CHUNK_TOKENS
