"""The staged analyst over mocked HTTP: store → upload → poll → four stages, artifacts, resume."""

from __future__ import annotations

import json

import pytest

from refinery.analysis.condense import stage1_evidence, stage2_gaps, stage3_findings
from refinery.analysis.staged_failure_analyst import (
    STAGE_ARTIFACTS,
    StagedFailureAnalyst,
    compact_json,
)
from refinery.core.models import Confidence, FailureType
from refinery.errors import ServerError
from refinery.traces.render import RenderOptions
from refinery.wire.responses_client import ResponsesClient
from tests.fake_openai import SAMPLES, FakeOpenAI
from tests.fixtures_traces import EVALS, EXPECTATION, PROMPTS, make_trace


@pytest.fixture
def fake(mocked):
    return FakeOpenAI(mocked, indexing_polls=2)


@pytest.fixture
async def analyst_factory(make_transport, tmp_path):
    clients = []

    def factory(**kw):
        client = ResponsesClient(transport=make_transport())
        clients.append(client)
        kw.setdefault("artifacts_dir", tmp_path / "out")
        kw.setdefault("store", "hosted")  # the mocked host is not OpenAI's: the hosted path is asked for
        return StagedFailureAnalyst(model="gpt-4o", seed=7, client=client, **kw)

    yield factory
    for c in clients:
        await c.close()


def user_text(body):
    return body["input"][-1]["content"][0]["text"]


async def test_full_flow_sends_spec_valid_bodies_and_chains_stage_json(fake, analyst_factory, spec, tmp_path, clock):
    events = []
    analyst = analyst_factory(progress_callback=lambda stage, status, info: events.append((stage, status)))
    result = await analyst.analyze(make_trace(), EXPECTATION, PROMPTS, EVALS)

    assert fake.stages_called() == ["stage1", "stage2", "stage3", "stage4"]
    for body in fake.bodies:
        assert spec.validate(body) == []
        assert "seed" not in body
    s1, s2, s3, s4 = fake.bodies
    assert "tools" not in s1 and "include" not in s1  # one call holds every file: nothing to retrieve
    for body in (s2, s3):
        assert body["tools"][0]["vector_store_ids"] == ["vs_test"]
        assert body["include"] == ["file_search_call.results"]
    assert "tools" not in s4
    assert compact_json(SAMPLES["stage1"]) in user_text(s2)
    assert EXPECTATION.description in user_text(s2)
    assert compact_json(stage1_evidence(SAMPLES["stage1"])) in user_text(s3)
    assert compact_json(stage2_gaps(SAMPLES["stage2"])) in user_text(s3)
    assert compact_json(stage3_findings(SAMPLES["stage3"])) in user_text(s4)
    assert '"timeline"' not in user_text(s4) and "{stage1_json}" not in user_text(s4)

    assert result.store_id == "vs_test"
    assert result.synthesis.summary == SAMPLES["stage4"]["summary"]
    assert result.diagnosis.failure_type == FailureType.PROMPT_ISSUE
    assert result.prompt_versions == {
        "stage1": "STAGE1_TRACE_ANALYSIS_PROMPT@v1+STAGE1_STATUS_NOTE@v1",
        "stage2": "STAGE2_GAP_ANALYSIS_PROMPT@v1",
        "stage3": "STAGE3_DIAGNOSIS_PROMPT@v1+STAGE3_LOCALISATION_NOTE@v1",
        "stage4": "STAGE4_SYNTHESIS_PROMPT@v1",
    }
    assert result.usage["stage2"].total_tokens == 120
    meta = result.stage_metadata
    assert (
        meta["stage3"]["model"] == "gpt-4o" and meta["stage3"]["seed"] == 7 and meta["stage3"]["store_id"] == "vs_test"
    )

    out = tmp_path / "out" / "t1"  # the analyst's folder holds one subfolder a trace
    for stage, name in STAGE_ARTIFACTS.items():
        art = json.loads((out / name).read_text())
        assert art["output"] == SAMPLES[stage]
        assert art["meta"]["prompt_version"] == result.prompt_versions[stage]
        assert art["trace_id"] == "t1"
    assert not list(out.glob(".*.tmp"))
    assert sorted(p.name for p in (out / "files").iterdir()) == sorted(
        n for n, _ in analyst.render(make_trace(), EXPECTATION, PROMPTS, EVALS)
    )
    assert not (out / "store.json").exists()  # the store was deleted, so a rerun must never reuse it

    assert ("stage1", "start") in events and ("stage4", "end") in events
    assert "vs_test" in fake.deleted  # store deleted at the end
    assert clock.sleeps  # polled while indexing


async def test_upload_carries_group_attributes(fake, analyst_factory):
    analyst = analyst_factory()
    await analyst.prepare(make_trace(), EXPECTATION, PROMPTS, EVALS)
    attrs = {e["file_id"]: e.get("attributes") for e in fake.batch["files"]}
    kinds = sorted(a["kind"] for a in attrs.values())
    assert kinds == ["eval", "expectations", "index", "prompt", "trace"]


@pytest.mark.parametrize("reading", ["inline", "search"])
async def test_big_trace_is_analysed_group_by_group_with_filters(fake, analyst_factory, spec, reading):
    # one group at a time: the fake answers in the order calls arrive (sent at once, any group could be first)
    analyst = analyst_factory(
        render_options=RenderOptions(runs_per_file=2), files_per_group=3, stage1_reading=reading, stage1_concurrency=1
    )
    second = json.loads(json.dumps(SAMPLES["stage1"]))
    for e in second["timeline"]:
        e["run_id"] = e["run_id"].replace("run-", "run-1")  # run-11, run-12: runs of the second half
    fake.group_answers = {1: SAMPLES["stage1"], 2: second, 3: SAMPLES["stage1"], 4: second}
    events = []
    analyst.progress_callback = lambda stage, status, info: events.append((stage, status, info.get("group")))
    result = await analyst.analyze(make_trace(n_runs=20), EXPECTATION, until_stage=1)

    # in group order (groups are sent concurrently, so they may leave in any order)
    stage1_bodies = sorted(
        (b for b in fake.bodies if fake.stage_of(b) == "stage1"), key=lambda b: b["tools"][0]["filters"]["value"]
    )
    assert len(stage1_bodies) == 4  # 20 runs / 2 per file = 10 files / 3 per group
    for g, body in enumerate(stage1_bodies, start=1):
        # inline: the group's own files are in the prompt and the search covers the rest; search: only the group
        assert body["tools"][0]["filters"] == {
            "type": "ne" if reading == "inline" else "eq",
            "key": "group",
            "value": g,
        }
        assert spec.validate(body) == []
    assert "runs 001 to 006" in user_text(stage1_bodies[0]) and "runs 019 to 020" in user_text(stage1_bodies[3])
    first_group = ["t1_runs_001-002.md", "t1_runs_003-004.md", "t1_runs_005-006.md"]
    inlined = [name for name in first_group if f"===== file: {name} =====" in user_text(stage1_bodies[0])]
    assert inlined == (first_group if reading == "inline" else [])
    assert ("[run_id: run-5]" in user_text(stage1_bodies[0])) == (reading == "inline")
    assert "===== file: t1_runs_007-008.md" not in user_text(stage1_bodies[0])
    # groups 3 and 4 answered with runs of groups 1 and 2: each run is kept once, from its own group
    timeline = result.trace_analysis.timeline
    assert [(e.sequence, e.run_id) for e in timeline] == [(1, "run-1"), (2, "run-2"), (3, "run-11"), (4, "run-12")]
    assert result.stage_metadata["stage1"]["stage1_reading"] == reading
    ended = sorted(e[2] for e in events if e[:2] == ("stage1.group", "end"))  # in any order: groups run at once
    assert ended == [1, 2, 3, 4]
    assert fake.store_metadata["refinery_groups"] == "4"


async def test_a_failed_stage1_group_reruns_only_the_groups_not_yet_done(fake, analyst_factory, tmp_path):
    fake.failing_groups = {3}  # groups 1 and 2 answer, group 3 fails
    # one group at a time: groups 1 and 2 are done before group 3 fails (at once, its failure may stop them)
    options = dict(render_options=RenderOptions(runs_per_file=2), files_per_group=2, stage1_concurrency=1)
    with pytest.raises(ServerError):
        await analyst_factory(**options).analyze(make_trace(n_runs=12), EXPECTATION, until_stage=1)
    assert sorted(p.name for p in (tmp_path / "out" / "t1" / "stage1_groups").iterdir()) == [
        "group_001.json",
        "group_002.json",
    ]
    fake.bodies.clear()
    fake.failing_groups = set()
    result = await analyst_factory(**options).analyze(make_trace(n_runs=12), EXPECTATION, until_stage=1)
    assert [b["tools"][0]["filters"]["value"] for b in fake.bodies] == [3]
    assert len(result.trace_analysis.timeline) == 2  # each run once, however many groups answered with it
    assert result.usage["stage1"].total_tokens == 3 * 120


async def test_trace_without_runs_still_uploads_its_content(fake, analyst_factory):
    analyst = analyst_factory()
    trace = make_trace(n_runs=0)
    await analyst.analyze(trace, EXPECTATION, PROMPTS, until_stage=1)
    assert len(fake.batch["files"]) == 3  # index, prompt, expectations
    assert "filters" not in fake.bodies[0]["tools"][0]


async def test_failure_at_stage3_then_rerun_calls_only_stages_3_and_4(fake, analyst_factory, tmp_path):
    fake.fail("stage3", status=500)
    first = analyst_factory()
    with pytest.raises(ServerError, match="injected failure in stage3"):
        await first.analyze(make_trace(), EXPECTATION, PROMPTS, EVALS)
    out = tmp_path / "out" / "t1"  # the analyst's folder holds one subfolder a trace
    assert (out / "stage2_gap_analysis.json").exists() and not (out / "stage3_diagnosis.json").exists()
    assert "vs_test" not in fake.deleted  # kept for the resume
    fake.bodies.clear()
    uploads_before = len(fake.batch["files"])

    second = analyst_factory()
    result = await second.analyze(make_trace(), EXPECTATION, PROMPTS, EVALS)
    assert fake.stages_called() == ["stage3", "stage4"]
    assert len(fake.batch["files"]) == uploads_before
    assert result.trace_analysis.model_dump(mode="json") == SAMPLES["stage1"]
    assert result.stage_metadata["stage1"]["resumed"] is True
    assert result.diagnosis.root_cause == SAMPLES["stage3"]["root_cause"]


async def test_interface_methods_work_for_a_host(fake, analyst_factory):
    analyst = analyst_factory(artifacts_dir=None)
    trace = make_trace()
    ta = await analyst.analyze_trace(trace, EXPECTATION, PROMPTS, EVALS)
    assert ta.trace_id == "t1"
    assert isinstance(ta.execution_flow, list) and ta.execution_flow[1]["run_id"] == "run-2"
    assert ta.error_propagation_path == ["run-2"]
    assert ta.raw == SAMPLES["stage1"]
    assert any(c.file == "t1_runs_001-003.md" and c.section == "Run 002" for c in ta.citations)
    ga = await analyst.compare_to_expected(ta, EXPECTATION, PROMPTS, EVALS)
    assert [d["clause"] for d in ga.behavioral_differences] == ["looks up the order"]
    assert ga.missing_context == ["order id from the conversation"]
    dx = await analyst.diagnose_failure(ta, ga, PROMPTS, EVALS)
    assert dx.confidence == Confidence.HIGH
    assert dx.top_findings[0]["title"] == "Order id not extracted"
    assert dx.next_actions[0]["action"] == "Update the prompt to extract order ids"
    assert dx.metadata["summary"] == SAMPLES["stage4"]["summary"]
    assert dx.raw["synthesis"] == SAMPLES["stage4"]
    assert fake.stages_called() == ["stage1", "stage2", "stage3", "stage4"]


async def test_artifacts_of_another_trace_in_the_folder_given_are_not_reused(fake, analyst_factory, tmp_path):
    folder = tmp_path / "one"
    await analyst_factory().analyze(make_trace(trace_id="t1"), EXPECTATION, until_stage=1, artifacts_dir=folder)
    with pytest.raises(Exception, match="belongs to trace 't1'"):
        await analyst_factory(vector_store_id="vs_other").analyze(
            make_trace(trace_id="t2"), EXPECTATION, until_stage=1, artifacts_dir=folder
        )


async def test_traces_analysed_under_one_artifacts_dir_keep_a_subfolder_each(fake, analyst_factory, tmp_path):
    analyst = analyst_factory(vector_store_id="vs_other")
    for trace_id in ("t1", "t2"):
        await analyst.analyze(make_trace(trace_id=trace_id), EXPECTATION, until_stage=1)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["t1", "t2"]
