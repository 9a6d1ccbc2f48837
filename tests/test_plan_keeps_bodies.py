"""`plan --json` keeps request bodies while they add up to its limit: a body that cannot fit is
known by its texts' length and is not serialised to learn it, and the bodies kept are those that
serialising every one of them keeps."""

from __future__ import annotations

import json
import random
from typing import Any

from refinery.analysis import plan
from refinery.analysis.plan import measure


def _body(rng: random.Random) -> dict[str, Any]:
    texts = ["".join(rng.choice('ab "\\\n\u00e9\U0001f600') for _ in range(rng.randint(0, 400))) for _ in range(3)]
    return {
        "input": [{"role": "user", "content": [{"type": "input_text", "text": t} for t in texts]}],
        "max_output_tokens": 16,
    }


def _kept_by_serialising_each(bodies: list[dict[str, Any]], keep_bytes: int) -> list[bool]:
    """The rule as it was: each body serialised while the kept ones are under the limit."""
    kept, out = 0, []
    for body in bodies:
        room = kept < keep_bytes
        size = len(json.dumps(body)) if room else 0
        keep = room and kept + size <= keep_bytes
        kept += size if keep else 0
        out.append(keep)
    return out


def test_the_bodies_kept_are_those_serialising_each_would_keep():
    rng = random.Random(37)
    for _ in range(200):
        bodies = [_body(rng) for _ in range(rng.randint(1, 8))]
        keep_bytes = rng.randint(1, 4000)
        calls = measure(((f"call {i}", b) for i, b in enumerate(bodies)), keep_bytes)
        assert [c.body is not None for c in calls] == _kept_by_serialising_each(bodies, keep_bytes)


def test_a_body_whose_texts_alone_exceed_the_room_left_is_not_serialised(monkeypatch):
    dumped: list[Any] = []
    real = json.dumps
    monkeypatch.setattr(plan.json, "dumps", lambda obj, *a, **k: dumped.append(obj) or real(obj, *a, **k))
    small = {"input": [{"role": "user", "content": [{"type": "input_text", "text": "x" * 10}]}], "max_output_tokens": 1}
    big = {"input": [{"role": "user", "content": [{"type": "input_text", "text": "x" * 5000}]}], "max_output_tokens": 1}
    calls = measure(iter([("small", small), ("big", big)]), 1000)
    assert [c.body is not None for c in calls] == [True, False]
    assert any(obj is small for obj in dumped)
    assert not any(obj is big for obj in dumped)
