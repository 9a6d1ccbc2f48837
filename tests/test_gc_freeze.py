"""Existing objects are out of the garbage collector's passes while big work runs, and the host's
collector is as it was after (`core.gc_freeze`); the rendering runs off the event loop's thread."""

from __future__ import annotations

import gc

import pytest

from refinery.analysis.staged_failure_analyst import StagedFailureAnalyst
from refinery.core.gc_freeze import objects_frozen, survivors_frozen
from refinery.core.offload import worker_thread
from refinery.traces import spool
from refinery.wire.responses_client import ResponsesClient
from tests.fake_openai import FakeOpenAI
from tests.fixtures_traces import EXPECTATION, make_trace


def collector_settings() -> tuple[bool, tuple[int, ...], int]:
    return gc.isenabled(), gc.get_threshold(), gc.get_freeze_count()


@pytest.fixture
def unfrozen():
    """Each test starts and ends with nothing frozen (a failing test leaves nothing behind)."""
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_objects_that_exist_are_frozen_inside_the_block_and_given_back_after(unfrozen):
    before = collector_settings()
    existing = object.__new__(type("Existing", (), {}))  # a tracked object made before the block
    with objects_frozen():
        assert gc.get_freeze_count() > 0
        assert not any(o is existing for o in gc.get_objects())  # left out of every generation
    assert collector_settings() == before
    assert any(o is existing for o in gc.get_objects(generation=2))  # back in the oldest generation


def test_overlapping_blocks_unfreeze_only_when_the_last_one_ends(unfrozen):
    first, second = objects_frozen(), objects_frozen()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert gc.get_freeze_count() > 0  # the second piece of work still runs
    second.__exit__(None, None, None)
    assert gc.get_freeze_count() == 0


def test_objects_the_host_froze_itself_stay_frozen_and_nothing_more_is_frozen(unfrozen):
    gc.freeze()  # the host's own choice (a server that freezes before it forks)
    frozen = gc.get_freeze_count()
    made_after = object.__new__(type("MadeAfter", (), {}))
    with objects_frozen():
        assert gc.get_freeze_count() == frozen
        assert any(o is made_after for o in gc.get_objects())
    assert gc.get_freeze_count() == frozen


def test_the_collector_is_as_it_was_after_a_block_that_raised(unfrozen):
    before = collector_settings()
    with pytest.raises(RuntimeError), objects_frozen():
        raise RuntimeError("the work failed")
    assert collector_settings() == before


@pytest.fixture
def fake(mocked):
    return FakeOpenAI(mocked, indexing_polls=2)


async def test_an_analysis_renders_off_the_loop_with_objects_frozen_and_leaves_the_collector_as_it_was(
    fake, make_transport, tmp_path, monkeypatch, unfrozen
):
    seen: list[tuple[bool, int]] = []  # (in refinery's worker thread, freeze count) at each rendered file
    strip = spool.strip_marks

    def spy(marked: str):
        seen.append((worker_thread(), gc.get_freeze_count()))
        return strip(marked)

    monkeypatch.setattr(spool, "strip_marks", spy)
    counts_at_stages: list[int] = []
    before = collector_settings()
    async with ResponsesClient(transport=make_transport()) as client:
        analyst = StagedFailureAnalyst(
            model="gpt-4o",
            client=client,
            artifacts_dir=tmp_path / "out",
            progress_callback=lambda stage, status, info: counts_at_stages.append(gc.get_freeze_count()),
        )
        result = await analyst.analyze(make_trace(), EXPECTATION)
    assert result.diagnosis is not None
    assert seen and all(in_worker for in_worker, _ in seen)  # never the loop's thread
    assert all(count > 0 for _, count in seen)
    assert counts_at_stages and all(count > 0 for count in counts_at_stages)
    assert collector_settings() == before


def test_a_plan_is_measured_with_objects_frozen_and_leaves_the_collector_as_it_was(unfrozen):
    from refinery.analysis.plan import measure

    counts: list[int] = []

    def bodies():
        for n in range(3):
            counts.append(gc.get_freeze_count())
            yield f"call {n}", {"input": [], "max_output_tokens": 16}

    before = collector_settings()
    assert [c.name for c in measure(bodies())] == ["call 0", "call 1", "call 2"]
    assert counts and all(count > 0 for count in counts)
    assert collector_settings() == before


def test_what_the_work_keeps_is_frozen_at_the_next_step_after_two_younger_passes(unfrozen):
    callbacks = list(gc.callbacks)
    with objects_frozen():
        made_inside = [object.__new__(type(f"MadeInside{i}", (), {})) for i in range(3)]
        frozen = gc.get_freeze_count()
        survivors_frozen()  # no pass since the freeze: nothing more
        assert gc.get_freeze_count() == frozen
        gc.collect(1)  # one younger pass: not yet
        survivors_frozen()
        assert gc.get_freeze_count() == frozen
        gc.collect(1)  # a second: what the work kept is frozen at the next step
        survivors_frozen()
        assert gc.get_freeze_count() > frozen
        assert not any(o is made_inside[0] for o in gc.get_objects())
    assert gc.callbacks == callbacks  # no collector callback: a signal's exception is never lost in one
    assert gc.get_freeze_count() == 0
    assert any(o is made_inside[0] for o in gc.get_objects(generation=2))


def test_after_a_full_pass_the_next_step_freezes_what_the_work_kept(unfrozen):
    with objects_frozen():
        made_inside = [object.__new__(type("MadeInside", (), {}))]
        frozen = gc.get_freeze_count()
        gc.collect()
        survivors_frozen()
        assert gc.get_freeze_count() > frozen
        assert not any(o is made_inside[0] for o in gc.get_objects())


def test_a_young_cycle_that_is_garbage_is_collected_at_the_step_not_frozen(unfrozen):
    import weakref

    class Node:
        pass

    with objects_frozen():
        gc.collect(1)
        gc.collect(1)  # two younger passes: the next step freezes
        cycle = Node()
        cycle.me = cycle  # garbage once dropped, and only a collector pass finds it
        gone = weakref.ref(cycle)
        del cycle
        survivors_frozen()
        assert gone() is None  # found by the step's own younger pass before the freeze
        frozen = gc.get_freeze_count()
    assert frozen > 0


def test_outside_a_block_nothing_is_frozen_after_a_full_pass(unfrozen):
    with objects_frozen():
        pass
    gc.collect()
    survivors_frozen()
    assert gc.get_freeze_count() == 0


def test_survivors_are_not_frozen_when_the_host_froze_objects_itself(unfrozen):
    gc.freeze()
    frozen = gc.get_freeze_count()
    with objects_frozen():
        keep = [object.__new__(type("Kept", (), {}))]
        gc.collect()
        survivors_frozen()
        assert gc.get_freeze_count() == frozen
    assert any(o is keep[0] for o in gc.get_objects())


async def test_the_citation_texts_of_an_analysis_are_laid_out_in_the_worker_thread(
    fake, make_transport, tmp_path, monkeypatch
):
    from refinery.analysis import stage_calls

    made_in: list[bool] = []  # in refinery's worker thread, for each RunTexts made
    real = stage_calls.RunTexts

    def spy(files):
        made_in.append(worker_thread())
        return real(files)

    monkeypatch.setattr(stage_calls, "RunTexts", spy)
    async with ResponsesClient(transport=make_transport()) as client:
        analyst = StagedFailureAnalyst(model="gpt-4o", client=client, artifacts_dir=tmp_path / "out")
        result = await analyst.analyze(make_trace(), EXPECTATION)
    assert result.diagnosis is not None
    assert made_in == [True]  # one, shared by citation checks and search; never on the loop's thread
