"""What stages send, and no more (issue 37): no `file_search` where nothing is left to retrieve,
result counts sized to the store, and each later stage given only what it reads of the earlier
stages' JSON, within a ceiling the plan counts."""

from __future__ import annotations

from typing import Any

from refinery.analysis.condense import (
    PASTED_TOKENS,
    STAGE1_NOT_REPEATED,
    pasted,
    shrunk,
    stage1_ceiling,
)
from refinery.analysis.plan import measure, plan_summary, planned_requests
from refinery.analysis.staged_failure_analyst import StagedFailureAnalyst
from refinery.analysis.stages import compact_json, file_chunks, sized_results
from refinery.core.tokens import estimate_body_tokens, estimate_tokens
from refinery.traces.render import RenderOptions
from refinery.traces.spool import file_stats
from tests.fake_openai import SAMPLES
from tests.fixtures_traces import EXPECTATION, make_trace


def user_text(body: dict[str, Any]) -> str:
    return str(body["input"][-1]["content"][0]["text"])


def planned(analyst: StagedFailureAnalyst, n_runs: int = 14) -> tuple[list[tuple[str, dict[str, Any]]], Any, Any]:
    trace = make_trace(n_runs=n_runs)
    files = analyst.render(trace, EXPECTATION)
    return list(planned_requests(analyst, trace, files, EXPECTATION)), trace, files


def store_chunks(files: Any, leave_out: set[str] = frozenset()) -> int:  # type: ignore[assignment]
    return sum(file_chunks(tokens) for name, _, tokens in file_stats(files) if name not in leave_out)


# --- 1. no retrieval where nothing is left to retrieve -----------------------------------------
def test_stage1_has_no_file_search_when_its_one_group_holds_every_run_file(spec):
    analyst = StagedFailureAnalyst(render_options=RenderOptions(runs_per_file=4))
    bodies, trace, files = planned(analyst)
    [(name, body)] = [(n, b) for n, b in bodies if n.startswith("stage1")]
    assert name == "stage1" and "tools" not in body and "include" not in body
    assert spec.validate(body) == []
    text = user_text(body)
    for fname, _ in files:  # every file inline: runs, index and expectations
        assert f"===== file: {fname} =====" in text
    assert text.index("_index.md =====") < text.index("_runs_001-004.md =====")  # the task before the runs
    assert "This pass has no file_search tool" in text and "file_search covers only" not in text


def test_the_plan_counts_no_retrieval_for_a_stage1_with_no_file_search():
    analyst = StagedFailureAnalyst()
    bodies, trace, files = planned(analyst)
    calls = measure(bodies, keep_bytes=None)
    stage1 = next(c for c in calls if c.name == "stage1")
    plan = plan_summary(analyst, trace, files, calls)
    assert stage1.retrieval == 0
    assert plan["stages"]["stage1"]["input_tokens"] == estimate_body_tokens(stage1.body)


def test_a_group_of_several_reads_its_runs_inline_and_looks_up_the_rest_with_a_few_results():
    analyst = StagedFailureAnalyst(render_options=RenderOptions(runs_per_file=4), files_per_group=2)
    bodies, trace, files = planned(analyst, n_runs=40)
    groups = analyst.stage1_groups(files)
    stage1 = [b for n, b in bodies if n.startswith("stage1")]
    assert len(stage1) == len(groups) > 1
    for group, body in zip(groups, stage1):
        [tool] = body["tools"]
        assert tool["filters"] == {"type": "ne", "key": "group", "value": group.number}
        assert tool["max_num_results"] == min(4, sized_results(store_chunks(files, set(group.files))))


# --- 2. result counts sized to the store -----------------------------------------------------
def test_a_file_is_cut_into_the_chunks_the_store_makes():
    assert [file_chunks(t) for t in (1, 800, 801, 1200, 1201, 1600, 8000)] == [1, 1, 2, 2, 3, 3, 19]


def test_max_num_results_is_a_twentieth_of_the_store_from_two_to_eight():
    assert [sized_results(n) for n in (1, 40, 41, 60, 61, 100, 160, 161, 5000)] == [2, 2, 3, 3, 4, 5, 8, 8, 8]


def test_stages_2_and_3_search_with_a_count_sized_to_the_store(spec):
    analyst = StagedFailureAnalyst()
    bodies, _, files = planned(analyst)
    by_name = dict(bodies)
    for key in ("stage2", "stage3"):
        assert spec.validate(by_name[key]) == []
        assert by_name[key]["tools"][0]["max_num_results"] == sized_results(store_chunks(files))
    assert "tools" not in by_name["stage4"]


def test_a_result_count_given_is_sent_as_given():
    bodies, _, files = planned(StagedFailureAnalyst(max_num_results={"stage2": 7}))
    by_name = dict(bodies)
    assert by_name["stage2"]["tools"][0]["max_num_results"] == 7
    assert by_name["stage3"]["tools"][0]["max_num_results"] == sized_results(store_chunks(files))  # not given


def test_stage1_read_by_search_keeps_eight_results():
    bodies, _, _ = planned(StagedFailureAnalyst(stage1_reading="search"))
    assert bodies[0][1]["tools"][0]["max_num_results"] == 8  # the search is the reading itself


# --- 3. earlier JSON shrunk to what each stage reads -----------------------------------------
PRIOR = {k: SAMPLES[k] for k in ("stage1", "stage2", "stage3")}


def test_stage2_reads_all_of_stage1():
    assert pasted("stage2", {"stage1": SAMPLES["stage1"]})["stage1"] == SAMPLES["stage1"]


def test_stage3_reads_stage1s_evidence_and_the_runs_it_flagged_not_every_runs_summary():
    view = pasted("stage3", PRIOR)["stage1"]
    assert view["events"] == SAMPLES["stage1"]["events"] and view["evidence"] == SAMPLES["stage1"]["evidence"]
    assert [t["run_id"] for t in view["flagged_runs"]] == ["run-2"]  # run-1 ("not stated", no event) left out
    assert view["runs"] == ["1 run-1 agent (not stated)", "2 run-2 lookup_order (error)"]  # every run, one line
    assert "coverage" not in view and "timeline" not in view


def test_stage3_reads_stage2s_gaps_not_the_clauses_met_or_its_coverage():
    view = pasted("stage3", PRIOR)["stage2"]
    assert [e["clause"] for e in view["expectations"]] == ["looks up the order"]
    assert view["missing_context"] == ["order id from the conversation"] and "coverage_updates" not in view


def test_stage4_carries_no_stage1_timeline_and_no_long_prose_of_stage3():
    slots = pasted("stage4", PRIOR)
    assert slots["stage1"] == STAGE1_NOT_REPEATED
    assert "detailed_analysis" not in slots["stage3"]
    assert slots["stage3"]["root_cause"] == SAMPLES["stage3"]["root_cause"]
    assert all("evidence" not in e for e in slots["stage3"]["errors"])
    assert '"timeline"' not in compact_json(slots)


def test_a_view_is_cut_to_its_ceiling_however_long_the_output():
    stage3 = {
        **SAMPLES["stage3"],
        "causal_chains": SAMPLES["stage3"]["causal_chains"] * 40,
        "root_cause": "because " * 2000,
        "remediations": SAMPLES["stage3"]["remediations"] * 60,
    }
    slots = pasted("stage4", {**PRIOR, "stage3": stage3})
    assert estimate_tokens(compact_json(slots["stage3"])) <= PASTED_TOKENS["stage4"]["stage3"]
    assert slots["stage3"]["root_cause"].startswith("because")  # cut, not dropped


def test_shrunk_leaves_what_fits_alone():
    assert shrunk(SAMPLES["stage2"], 10_000) == SAMPLES["stage2"]


def test_the_plan_counts_each_pasted_output_at_its_ceiling():
    analyst = StagedFailureAnalyst()
    bodies, trace, files = planned(analyst)
    calls = {c.name: c for c in measure(bodies)}
    stages = plan_summary(analyst, trace, files, list(calls.values()))["stages"]
    assert stages["stage2"]["input_tokens"] == calls["stage2"].input_tokens + calls["stage2"].retrieval + 2000
    assert stages["stage3"]["input_tokens"] == calls["stage3"].input_tokens + calls["stage3"].retrieval + 1500 + 800
    assert stages["stage4"]["input_tokens"] == calls["stage4"].input_tokens + 500 + 1200


def test_stage2_reads_a_many_group_stage1_up_to_its_ceiling():
    analyst = StagedFailureAnalyst(render_options=RenderOptions(runs_per_file=4), files_per_group=2)
    bodies, trace, files = planned(analyst, n_runs=40)
    calls = {c.name: c for c in measure(bodies)}
    plan = plan_summary(analyst, trace, files, list(calls.values()))
    assert plan["groups"] * 2000 > stage1_ceiling(2000)
    stage2 = calls["stage2"]
    assert plan["stages"]["stage2"]["input_tokens"] == stage2.input_tokens + stage2.retrieval + stage1_ceiling(2000)


def test_the_planned_stage4_body_says_stage1_is_not_repeated():
    text = user_text(dict(planned(StagedFailureAnalyst())[0])["stage4"])
    assert STAGE1_NOT_REPEATED in text and "<stage 1 JSON>" not in text and "<stage 3 JSON>" in text
