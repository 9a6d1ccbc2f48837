"""The stand-in model answers as the best deterministic heuristic over the request text: the run that
failed is the decisive step, its error is quoted as the root cause, its agent is responsible, and
its prose says it is the stand-in's."""

from __future__ import annotations

import json

from refinery.analysis.staged_schemas import DIAGNOSIS_SCHEMA, SYNTHESIS_SCHEMA, TRACE_ANALYSIS_SCHEMA
from refinery.testing.retrieval import Chunk
from refinery.testing.standin_model import StandInModel
from refinery.testing.standin_reading import read_request


def section(seq: int, name: str, rid: str, *fields: str, blocks: dict[str, str] | None = None) -> str:
    lines = [f"## Run {seq:03d}: {name} [run_id: {rid}]", "", f"- run_id: {rid}", f"- name: {name}", *fields, ""]
    for heading, text in (blocks or {}).items():
        lines += [f"### {heading} ({rid})", "```", text, "```", ""]
    return "\n".join(lines)


def chunk(*sections: str) -> Chunk:
    return Chunk("file-1", "t_runs_001-003.md", "# Trace t — runs\n\n" + "\n".join(sections), {})


AGENT = section(
    1, "Planner", "r1", "- type: agent", "- status: ok", blocks={"Outputs": "output: all done, refund issued"}
)
TOOL_FAILED = section(
    2,
    "fetch_page",
    "r2",
    "- type: tool",
    "- status: error",
    "- parent_run_id: r1",
    blocks={"Error": "TimeoutError: 30 s"},
)
READS_LIKE = section(
    3,
    "search",
    "r3",
    "- type: tool",
    "- status: ok",
    "- parent_run_id: r1",
    blocks={"Outputs": "output: Error: no results for that query"},
)


def diagnose(*chunks: Chunk, user: str = "Determine root causes.") -> dict:
    return StandInModel().answer(DIAGNOSIS_SCHEMA, list(chunks), user)


def test_the_decisive_step_is_the_run_that_states_an_error_and_its_error_is_the_root_cause():
    answer = diagnose(chunk(AGENT, TOOL_FAILED, READS_LIKE))
    assert answer["decisive_step"]["run_id"] == "r2"
    assert "TimeoutError: 30 s" in answer["root_cause"] and "fetch_page" in answer["root_cause"]
    assert [e["run_id"] for e in answer["errors"]] == ["r2", "r3"]
    assert answer["errors"][0]["evidence"] == "TimeoutError: 30 s" and answer["errors"][0]["category"] == "timeout"


def test_the_responsible_agent_is_the_agent_run_enclosing_the_failed_tool():
    assert diagnose(chunk(AGENT, TOOL_FAILED))["responsible_agent"] == "Planner"


def test_a_step_names_its_own_agent():
    step = section(
        4,
        "WebSurfer",
        "step-4",
        "- agent: WebSurfer",
        "- status: not stated",
        blocks={"Outputs": "I could not open the page: 404 Not Found"},
    )
    answer = diagnose(chunk(step))
    assert answer["responsible_agent"] == "WebSurfer" and answer["decisive_step"]["run_id"] == "step-4"
    assert "404 Not Found" in answer["root_cause"]  # no stated error: an output that reads like one


def test_with_no_stated_error_an_output_that_reads_like_one_is_decisive():
    assert diagnose(chunk(AGENT, READS_LIKE))["decisive_step"]["run_id"] == "r3"


def test_with_no_failure_at_all_it_says_so_rather_than_inventing_one():
    answer = diagnose(chunk(AGENT))
    assert answer["errors"] == [] or all(e["run_id"] == "r1" for e in answer["errors"])
    assert "no run marked as failed" in answer["root_cause"]


def test_the_synthesis_names_the_decisive_step_from_the_diagnosis_in_its_prompt_and_says_it_is_the_stand_ins():
    stage3 = diagnose(chunk(AGENT, TOOL_FAILED))
    stage1 = StandInModel().answer(TRACE_ANALYSIS_SCHEMA, [chunk(AGENT, TOOL_FAILED)], "Produce a timeline.")
    prompt = f"Synthesize.\n\nStage 1 Results:\n{json.dumps(stage1)}\n\nStage 3 Results:\n{json.dumps(stage3)}\n"
    answer = StandInModel().answer(SYNTHESIS_SCHEMA, [], prompt)
    assert answer["summary"].startswith("Stand-in heuristic") and "TimeoutError: 30 s" in answer["summary"]
    assert "fetch_page" in answer["top_findings"][0]["title"]
    assert answer["top_findings"][0]["citations"] == [{"file": "t_runs_001-003.md", "section_or_lines": "Run 002"}]
    assert answer["actions_next"][0]["owner"] == "Planner" and "fetch_page" in answer["actions_next"][0]["action"]


def test_the_stage1_timeline_states_each_runs_status_and_the_failures_are_its_events():
    answer = StandInModel().answer(TRACE_ANALYSIS_SCHEMA, [chunk(AGENT, TOOL_FAILED, READS_LIKE)], "")
    assert [(e["run_id"], e["status"]) for e in answer["timeline"]] == [("r1", "ok"), ("r2", "error"), ("r3", "ok")]
    assert [(e["run_id"], e["kind"]) for e in answer["events"]] == [("r2", "failure"), ("r3", "anomaly")]


def test_a_failed_run_only_listed_in_the_index_is_still_found():
    index = Chunk("file-0", "t_index.md", "## Failed runs\n- Run 007 [run_id: r7] db_write: IOError: disk full\n", {})
    reading = read_request([index], "")
    assert reading.failure is not None and (reading.failure.run_id, reading.failure.error) == (
        "r7",
        "IOError: disk full",
    )


def test_with_more_runs_than_it_may_list_the_failed_run_stays_on_the_timeline():
    many = [section(i, f"step_{i}", f"r{i}", "- type: tool", "- status: ok") for i in range(1, 12)]
    failed = section(12, "late_tool", "r12", "- type: tool", "- status: error", blocks={"Error": "ValueError: bad"})
    answer = StandInModel(max_items=4).answer(TRACE_ANALYSIS_SCHEMA, [chunk(*many, failed)], "")
    assert [e["run_id"] for e in answer["timeline"]] == ["r1", "r2", "r3", "r12"]


def test_a_later_stage_that_sees_no_run_takes_the_failure_stage1_flagged():
    stage1 = {"timeline": [], "events": [{"kind": "anomaly", "run_id": "step-9", "description": "Error: 404"}]}
    reading = read_request([], f"Diagnose.\n\nStage 1 Results:\n{json.dumps(stage1)}\n")
    assert reading.failure is not None and (reading.failure.run_id, reading.failure.error) == ("step-9", "Error: 404")
