"""Failure patterns when no run states an error: the key comes from what the runs say — the output
text of the tool call the diagnosis rests on, with the tool's name — before the diagnosis's type
and categories; and the model's pass may split a group as well as merge groups."""

from __future__ import annotations

import json

from refinery.core.models import RunType, TraceRun
from refinery.patterns.grouping import find_patterns
from refinery.patterns.merge import MergedPattern, PatternMergeOutput, merge_body, merged
from refinery.traces.transcript import tool_said


def outcome(name: str, said: str | None, said_by: str | None = "fetch_orders", **extra) -> dict:
    return {
        "name": name,
        "status": "done",
        "failing_run": "user",
        "failing_error": None,
        "said_by": said_by if said else None,
        "said": said,
        "failure_type": "prompt_issue",
        "error_categories": ["language_only_hallucination"],
        "tokens": 100,
        "cost_usd": 0.01,
        **extra,
    }


def test_causes_stated_only_in_tool_output_are_told_apart_by_that_text():
    outcomes = [outcome(f"t{i}", f"ERROR: timeout after {40 + i}s contacting orders-eu-{i}") for i in range(3)]
    outcomes += [outcome(f"r{i}", f"HTTP 429 rate limited, retry after {30 * i}s") for i in range(1, 3)]
    outcomes += [outcome("n1", None), outcome("n2", None)]  # answered without calling the tool
    timeouts, limited, silent = find_patterns(outcomes)
    assert timeouts.traces == ["t0", "t1", "t2"]
    assert timeouts.title == "fetch_orders: error: timeout after <id> contacting <id>"
    assert limited.traces == ["r1", "r2"] and limited.title.startswith("fetch_orders: http <n> rate limited")
    assert silent.traces == ["n1", "n2"] and silent.cause == "prompt_issue [language_only_hallucination]"


def test_a_stated_error_still_comes_before_what_a_tool_said():
    [p] = find_patterns([outcome("a", "all fine", failing_run="refund", failing_error="PermissionError: no")])
    assert p.title == "refund: permissionerror: no"


def run(rid: str, kind: RunType, name: str, text: str = "") -> TraceRun:
    return TraceRun(id=rid, name=name, run_type=kind, outputs={"content": text} if text else None)


RUNS = [
    run("s0", RunType.PROMPT, "user", "Where is order 7?"),
    run("s1", RunType.TOOL, "fetch_orders", "HTTP 429 rate limited"),
    run("s2", RunType.LLM, "agent", "Retrying."),
    run("s3", RunType.TOOL, "fetch_orders", "ERROR: timeout after 45s"),
    run("s4", RunType.LLM, "agent", "Order 7 shipped."),
]


def test_the_blamed_tool_call_says_what_went_wrong():
    assert tool_said(RUNS, "s1") == ("fetch_orders", "HTTP 429 rate limited")


def test_a_blamed_model_step_rests_on_the_tool_call_before_it():
    assert tool_said(RUNS, "s2") == ("fetch_orders", "HTTP 429 rate limited")
    assert tool_said(RUNS, "s4") == ("fetch_orders", "ERROR: timeout after 45s")


def test_a_blamed_step_before_any_tool_call_takes_the_traces_last():
    assert tool_said(RUNS, "s0") == ("fetch_orders", "ERROR: timeout after 45s")
    assert tool_said(RUNS, None) == ("fetch_orders", "ERROR: timeout after 45s")


def test_a_trace_with_no_tool_call_says_nothing():
    assert tool_said([RUNS[0], RUNS[2]], "s2") is None


def mixed_group():
    """One deterministic group (no tool call, one type and categories) holding two causes."""
    outcomes = [outcome(f"w{i}", None, tokens=100 * (i + 1), cost_usd=0.01 * (i + 1)) for i in range(4)]
    return find_patterns(outcomes)


def test_the_model_sees_each_traces_root_cause_so_it_can_split_a_group():
    [group] = mixed_group()
    body = merge_body([group], {}, "gpt-4o", {"w0": "answered from memory", "w1": "skipped the tool"})
    groups = json.loads(body["input"][-1]["content"][0]["text"].split("\n", 1)[1])
    assert groups[0]["trace root causes"][:2] == [
        {"trace": "w0", "root cause": "answered from memory"},
        {"trace": "w1", "root cause": "skipped the tool"},
    ]


def test_the_model_may_split_a_group_each_part_with_its_own_traces_and_figures():
    [group] = mixed_group()
    per_trace = {f"w{i}": {"tokens": 100 * (i + 1), "cost_usd": 0.01 * (i + 1), "duration_s": 1.0} for i in range(4)}
    answer = PatternMergeOutput(
        patterns=[
            MergedPattern(
                title="Answers from memory",
                cause="The agent never called its tool.",
                affected=["agent"],
                suggested_fix="Require the lookup.",
                groups=[],
                traces=["w2", "w3", "w9-invented"],
            )
        ]
    )
    split, rest = merged([group], answer, per_trace)
    assert split.title == "Answers from memory" and split.traces == ["w2", "w3"] and split.count == 2
    assert (split.tokens, split.cost_usd, split.share) == (700, 0.07, 0.5)
    assert split.id != group.id and split.merged_from == [group.id]
    assert rest.id == group.id and rest.traces == ["w0", "w1"] and (rest.count, rest.tokens) == (2, 300)


def test_a_trace_taken_by_one_pattern_is_not_taken_again_by_a_later_group():
    [group] = mixed_group()

    def pattern(**kw) -> MergedPattern:
        return MergedPattern(title="t", cause="c", affected=[], suggested_fix="", **kw)

    first, second = merged(
        [group], PatternMergeOutput(patterns=[pattern(groups=[], traces=["w0"]), pattern(groups=[group.id], traces=[])])
    )
    assert sorted([first.traces, second.traces]) == [["w0"], ["w1", "w2", "w3"]]


async def test_a_batch_records_what_the_tool_said_and_groups_on_it(openai_env, tmp_path):
    from refinery.app.batch import analyze_many, discover
    from refinery.wire.responses_client import ResponsesClient

    for i in range(3):
        messages = [
            {"role": "user", "content": f"Where is order {i}?"},
            {"role": "assistant", "name": "agent", "content": "Calling fetch_orders."},
            {
                "role": "tool",
                "name": "fetch_orders",
                "content": f"ERROR: timeout after {40 + i}s contacting orders-eu-{i}",
            },
            {"role": "assistant", "name": "agent", "content": "Your order has shipped."},
        ]
        (tmp_path / f"t{i}.json").write_text(json.dumps({"task": "Find the order.", "messages": messages}))
    async with ResponsesClient(api_key="sk-x", base_url=openai_env.base_url) as client:
        summary = await analyze_many(discover(tmp_path), out_dir=tmp_path / "out", client=client, name_patterns=False)
    outcome = summary.outcomes["t1"]
    assert outcome.failing_error is None  # no run states an error …
    assert (outcome.said_by, outcome.said) == ("fetch_orders", "ERROR: timeout after 41s contacting orders-eu-1")
    [pattern] = summary.patterns  # … and the three group on what the tool said
    assert pattern.traces == ["t0", "t1", "t2"] and pattern.title.startswith("fetch_orders: error: timeout")


def test_the_request_that_lets_the_model_split_is_strict_and_valid_for_the_api(spec):
    from refinery.core.strict_schema import strict_problems
    from refinery.patterns.merge import MERGE_SCHEMA

    [group] = mixed_group()
    body = merge_body([group], {}, "gpt-4o", {t: "skipped the tool" for t in group.traces})
    assert strict_problems(MERGE_SCHEMA) == [] and "tools" not in body
    assert MERGE_SCHEMA["properties"]["patterns"]["items"]["required"][-2:] == ["groups", "traces"]
    assert spec.validate(body) == []
