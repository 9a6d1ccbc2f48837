"""Failure patterns across a batch: the same cause with different numbers and ids groups without a
model; patterns are ranked by how many traces they hold; a batch's summaries open with them."""

from __future__ import annotations

import json
from pathlib import Path

from refinery.app.cli import amain
from refinery.patterns.grouping import find_patterns, normalise
from tests.helpers import plain_md

FIX = Path(__file__).parent / "fixtures"


def test_what_varies_between_occurrences_of_one_cause_is_set_aside():
    a = normalise("Timeout after 30 s calling https://api.example.com/orders/42 (request req_8f2a91, order 'A-17')")
    b = normalise("Timeout after 12.5 s calling https://api.example.com/orders/7 (request req_1b2c, order 'B-3')")
    assert a == b == "timeout after <n> s calling <url> (request <id>, order <quoted>)"
    assert normalise("KeyError: 'order_id'") != normalise("PermissionError: denied for user 9f8e7d6c5b4a")


def outcome(name: str, run: str, error: str | None, **extra) -> dict:
    return {
        "name": name,
        "status": "done",
        "failing_run": run,
        "failing_error": error,
        "tokens": 100,
        "cost_usd": 0.01,
        **extra,
    }


def test_patterns_are_ranked_by_count_with_their_traces_and_share():
    outcomes = [outcome(f"t{i}", "lookup_order", f"Timeout after {i} s for order {i}") for i in range(3)]
    outcomes += [outcome("t9", "refund", "PermissionError: user u-77 may not refund")]
    outcomes += [{"name": "t10", "status": "failed"}]  # not analysed: in no pattern
    first, second = find_patterns(outcomes)
    assert first.traces == ["t0", "t1", "t2"] and first.count == 3 and first.share == 0.75
    assert first.title == "lookup_order: timeout after <n> s for order <n>" and first.cost_usd == 0.03
    assert second.traces == ["t9"]


def test_a_failing_run_that_states_no_error_groups_by_the_diagnosis():
    outcomes = [
        outcome("a", "planner", None, failure_type="prompt_issue", error_categories=["Goal Deviation"]),
        outcome("b", "planner", None, failure_type="prompt_issue", error_categories=["Goal Deviation"]),
    ]
    [p] = find_patterns(outcomes)
    assert p.count == 2 and p.cause == "prompt_issue [Goal Deviation]"


def planted(folder: Path, name: str, tool: str, error: str) -> None:
    log = {
        "task": "Refund the customer's order.",
        "messages": [
            {"role": "user", "content": "Refund my order."},
            {"role": "assistant", "name": "agent", "content": f"Calling {tool}."},
            {"role": "tool", "name": tool, "content": "", "error": error},
            {"role": "assistant", "name": "agent", "content": "I could not finish."},
        ],
    }
    (folder / f"{name}.json").write_text(json.dumps(log))


async def test_a_batch_writes_its_patterns_and_opens_its_summaries_with_them(openai_env, tmp_path, capsys):
    src = tmp_path / "traces"
    src.mkdir()
    for i in range(3):
        planted(src, f"timeout{i}", "lookup_order", f"Timeout after {10 + i} s on order {40 + i} (req_{i}a{i}b)")
    planted(src, "denied", "refund", "PermissionError: user u-7 may not refund order 9")
    out = tmp_path / "out"
    assert await amain(["batch", str(src), "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    groups = [sorted(p["traces"]) for p in summary["patterns"]]
    assert groups == [["timeout0", "timeout1", "timeout2"], ["denied"]]
    md = plain_md((out / "summary.md").read_text())
    assert md.index("## Failure patterns") < md.index("## Traces")
    assert (
        "[timeout0](timeout0/report.md)" in md and 'href="timeout0/report.html"' in (out / "summary.html").read_text()
    )
    first = summary["patterns"][0]
    assert "Failure pattern of this batch (3 traces)" in (out / "timeout1" / "report.md").read_text()
    assert f'href="../summary.html#{first["id"]}"' in (out / "timeout1" / "report.html").read_text()
    assert f'id="{first["id"]}"' in (out / "summary.html").read_text()
    capsys.readouterr()
    assert await amain(["patterns", str(out)]) == 0
    assert "2 pattern(s) over 4 analysed trace(s):" in capsys.readouterr().out
    calls = openai_env.stats["POST /v1/responses"]
    assert await amain(["patterns", str(out)]) == 0  # the same diagnoses: the patterns kept, no model call
    assert openai_env.stats["POST /v1/responses"] == calls and (out / "patterns.json").is_file()


def test_the_merge_call_is_strict_json_with_no_tools_and_valid_for_the_api(spec):
    from refinery.core.strict_schema import strict_problems
    from refinery.patterns.merge import MERGE_SCHEMA, merge_body

    patterns = find_patterns([outcome("a", "lookup", "Timeout 3 s"), outcome("b", "lookup2", "no answer in 30 s")])
    body = merge_body(patterns, {patterns[0].id: ["the lookup timed out"]}, "gpt-4o")
    assert strict_problems(MERGE_SCHEMA) == [] and "tools" not in body
    assert body["text"]["format"]["name"] == "failure_patterns" and body["text"]["format"]["strict"] is True
    assert spec.validate(body) == []


def test_the_model_may_merge_only_the_groups_it_was_shown():
    from refinery.patterns.merge import MergedPattern, PatternMergeOutput, merged

    patterns = find_patterns(
        [
            outcome("a", "lookup", "Timeout 3 s"),
            outcome("b", "lookup", "Timeout 9 s"),
            outcome("c", "lookup2", "no reply"),
        ]
        + [outcome("d", "refund", "denied")]
    )
    timeout, reply, denied = (next(p for p in patterns if key in p.title) for key in ("timeout", "no reply", "denied"))
    answer = PatternMergeOutput(
        patterns=[
            MergedPattern(
                title="Order lookup times out",
                cause="The order service is slow.",
                affected=["lookup"],
                suggested_fix="Raise the timeout.",
                groups=[timeout.id, reply.id, "p-invented"],
                traces=[],
            ),
            MergedPattern(title="Again", cause="x", affected=[], suggested_fix="", groups=[timeout.id], traces=[]),
        ]
    )
    first, second = merged(patterns, answer)
    assert first.title == "Order lookup times out" and first.traces == ["a", "b", "c"] and first.count == 3
    assert first.merged_from == [timeout.id, reply.id] and first.suggested_fix == "Raise the timeout."
    assert second.id == denied.id and second.traces == ["d"]  # not mentioned: kept as it was
