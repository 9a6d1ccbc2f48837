"""A plan counts each rendered file once: a body's token count taken from the spool's count of the
files it holds whole equals counting the body's text again — on random texts and spans, on every
fixture trace and on real traces, hosted and with no store, inline and by search."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from refinery.analysis.plan import measure, planned_requests
from refinery.analysis.staged_failure_analyst import StagedFailureAnalyst
from refinery.core import tokens
from refinery.core.models import DomainExpertExpectation
from refinery.core.tokens import estimate_tokens, estimate_tokens_around, piece_count
from refinery.errors import RefineryError
from refinery.traces import load_trace, load_traces
from tests.helpers import SHARED
from tests.test_token_estimate import KINDS

FIXTURES = sorted(p for p in (Path(__file__).parent / "fixtures").iterdir() if p.suffix in (".json", ".jsonl"))
REAL = (
    sorted((SHARED / "eval-data" / "trail" / "traces").glob("*/*.json"))[:6]
    + sorted((SHARED / "trace-samples").rglob("*.json"))[:6]
)
EXPECT = DomainExpertExpectation(description="The agent finds the order and issues the refund.")


def _spans(rng: random.Random, text: str) -> list[tuple[int, int, int]]:
    cuts = sorted(rng.sample(range(len(text) + 1), min(len(text) + 1, rng.randint(0, 8))))
    pairs = list(zip(cuts[::2], cuts[1::2]))
    return [(s, e, piece_count(text[s:e])) for s, e in pairs]


def test_a_text_counted_around_spans_of_known_count_counts_as_the_whole():
    rng = random.Random(37)
    for _ in range(3000):
        text = "".join(rng.choice(KINDS) for _ in range(rng.randint(0, 300)))
        assert estimate_tokens_around(text, _spans(rng, text)) == estimate_tokens(text), repr(text[:80])


def test_a_span_given_a_wrong_count_is_used_where_its_edges_stand_apart():
    """The counts given are trusted, not checked: a span's count replaces its text's (which is why
    `measure` gives only what it has checked against the spool)."""
    text = "word " * 20 + "#" + "x" * 30 + "#" + " tail" * 10
    start = text.index("#") + 1
    span = (start, start + 30, 1000)
    assert estimate_tokens_around(text, [span]) == estimate_tokens(text) - piece_count("x" * 30) + 1000


def _plans(path: Path) -> list[tuple[str, bool]]:
    try:
        trace = load_traces(path)[0]  # an eval log's first sample
    except RefineryError:
        return []
    checked = []
    for store, reading in (("hosted", "inline"), ("hosted", "search"), ("none", "inline")):
        analyst = StagedFailureAnalyst(model="gpt-4o", store=store, stage1_reading=reading)
        files, _ = analyst.rendering(trace, EXPECT)
        try:
            bodies = list(planned_requests(analyst, trace, files, EXPECT))
            checked.append((store, measure(iter(bodies), None) == measure(iter(bodies), None, files)))
        finally:
            files.close()
    return checked


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_a_plan_measured_with_the_spools_counts_is_the_plan_measured_by_counting(path):
    assert all(same for _, same in _plans(path))


@pytest.mark.skipif(not REAL, reason="../shared/eval-data not present")
@pytest.mark.parametrize("path", REAL, ids=lambda p: p.name)
def test_on_real_traces_the_plan_measured_with_the_spools_counts_is_the_same(path):
    checked = _plans(path)
    assert checked and all(same for _, same in checked)


def test_a_file_a_body_holds_whole_is_not_counted_again(tmp_path, monkeypatch):
    """The point of it: measured with the spool's counts, a trace's Stage 1 bodies (which hold its
    run files whole) cost counting a small part of their text."""
    path = tmp_path / "chat.json"
    steps = [{"role": "assistant", "name": f"a{i % 3}", "content": f"step {i} " + "words " * 60} for i in range(300)]
    path.write_text(json.dumps({"question": "Refund order 42.", "history": steps}))
    trace = load_trace(path)
    analyst = StagedFailureAnalyst(model="gpt-4o", store="hosted")
    files, _ = analyst.rendering(trace, EXPECT)
    bodies = list(planned_requests(analyst, trace, files, EXPECT))
    whole = sum(len(part["text"]) for _, b in bodies for m in b["input"] for part in m["content"])
    counted: list[int] = []
    real = tokens.piece_count
    monkeypatch.setattr(tokens, "piece_count", lambda text: counted.append(len(text)) or real(text))
    measure(iter(bodies), 0, files)
    files.close()
    assert 0 < sum(counted) < whole // 4


def test_a_runs_file_totals_are_what_adding_up_its_files_gives_and_are_added_up_once(tmp_path, monkeypatch):
    from refinery.analysis import stage_calls
    from refinery.analysis.stages import file_chunks
    from refinery.analysis.verification import RunTexts
    from refinery.traces.spool import file_stats

    trace = load_trace(Path(__file__).parent / "fixtures" / "otlp_trace.json")
    analyst = StagedFailureAnalyst(model="gpt-4o", store="hosted")
    files, _ = analyst.rendering(trace, EXPECT, prompts={"a b.md": "one", "a-b.md": "two"})  # one name, twice
    texts = RunTexts(files)
    stats = file_stats(files)
    calls: list[object] = []
    monkeypatch.setattr(stage_calls, "file_stats", lambda f: calls.append(f) or file_stats(f))
    totals = stage_calls.file_totals(texts)
    assert stage_calls.file_totals(texts) is totals and len(calls) == 1
    some = {stats[0][0], stats[-1][0], "not-a-file.md"}
    assert totals.all_chunks - sum(totals.chunks.get(n, 0) for n in some) == sum(
        file_chunks(tokens) for name, _, tokens in stats if name not in some
    )
    assert totals.run_files == {stats[i][0] for i in range(len(stats)) if files.layout(i).run_ids}
    assert totals.inline_sizes == {name: tokens + stage_calls.FILE_SEPARATOR_TOKENS for name, _, tokens in stats}
    files.close()
