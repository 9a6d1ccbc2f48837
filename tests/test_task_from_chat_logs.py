"""The task a chat log or trajectory was given: never a demonstration or an example shown to the
agent, taken from whichever role sits in the user's seat (`user`, `human`, `user_proxy`,
`customer`), and where it came from stated."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from refinery.testing.openapi_spec import find_shared
from refinery.traces import load_trace
from refinery.traces.task import is_demonstration

SHARED = find_shared()
SWE_REAL = SHARED / "trace-samples" / "swe-agent" / "swe-agent__test-repo-i1.traj" if SHARED else None

DEMO = (
    "Here is a demonstration of how to correctly accomplish this task.\nIt is included to show you how to "
    "correctly use the interface.\n--- DEMONSTRATION ---\nWe're currently solving the following issue: TimeDelta "
    "serialization precision"
)
ISSUE = "We're currently solving the following issue within our repository.\nISSUE:\nAdd a --json flag to `cli list`"


def swe_traj(tmp_path: Path, demo: dict) -> Path:
    data = {
        "environment": "swe_main",
        "trajectory": [{"action": "ls", "observation": "README.md", "thought": "Look around.", "state": "{}"}],
        "history": [
            {"role": "system", "content": "SETTING: You are an autonomous programmer."},
            {"role": "user", "content": DEMO, "agent": "primary", **demo},
            {"role": "user", "content": ISSUE, "agent": "primary"},
            {"role": "assistant", "content": "Look around.\n```\nls\n```"},
        ],
        "info": {"exit_status": "submitted"},
    }
    path = tmp_path / "run.traj"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("demo", [{"is_demo": True}, {"message_type": "demonstration"}, {}])
def test_a_swe_agent_demonstration_is_never_the_task(tmp_path, demo):
    trace = load_trace(swe_traj(tmp_path, demo))
    assert trace.metadata["task"] == ISSUE
    assert trace.metadata["task_source"].endswith("(history[2])")


@pytest.mark.skipif(SWE_REAL is None or not SWE_REAL.is_file(), reason="../shared/trace-samples/swe-agent not present")
def test_the_public_swe_agent_trajectory_is_judged_against_its_issue():
    trace = load_trace(SWE_REAL)
    assert trace.metadata["task"].startswith("We're currently solving the following issue within our repository.")
    assert "SyntaxError: invalid syntax" in trace.metadata["task"]
    assert "demonstration" not in trace.metadata["task"][:200].lower()


@pytest.mark.parametrize(
    "text",
    [
        "Here is an example of a good answer: ...",
        "Below is a demonstration of the tool.",
        "Example: the user asks for a refund.",
        "--- DEMONSTRATION ---\nsteps",
        "This is an example conversation.",
    ],
)
def test_a_message_that_says_it_is_an_example_is_a_demonstration(text):
    assert is_demonstration({"role": "user", "content": text})


@pytest.mark.parametrize("text", ["Give me an example of a haiku.", "Fix the demonstration script in demo/."])
def test_a_task_that_merely_mentions_examples_is_not_one(text):
    assert not is_demonstration({"role": "user", "content": text})


def test_a_magentic_one_log_takes_its_human_turn_as_the_task(tmp_path):
    path = tmp_path / "magentic.json"
    path.write_text(
        json.dumps(
            [
                {"role": "human", "content": "Which supermarkets near Lincoln Park sell salads under $15?"},
                {"role": "Orchestrator (thought)", "content": "Initial plan: ask WebSurfer."},
                {"role": "Orchestrator (-> WebSurfer)", "content": "Search for supermarkets near Lincoln Park."},
                {"role": "WebSurfer", "content": "I typed 'supermarkets Lincoln Park' into the search box."},
            ]
        )
    )
    trace = load_trace(path)
    assert trace.metadata["task"] == "Which supermarkets near Lincoln Park sell salads under $15?"
    assert trace.metadata["task_source"] == "the first human message [run_id: step-0]"


@pytest.mark.parametrize("role", ["user_proxy", "customer", "user"])
def test_other_user_seat_roles_state_the_task(tmp_path, role):
    path = tmp_path / "chat.json"
    path.write_text(
        json.dumps(
            [
                {"role": "system", "content": "You are the support agent."},
                {"role": role, "content": "Here is an example of a polite reply: 'Thanks!'"},
                {"role": role, "content": "Cancel my order 1182."},
                {"role": "assistant", "content": "Done."},
            ]
        )
    )
    trace = load_trace(path)
    assert trace.metadata["task"] == "Cancel my order 1182."
    assert trace.metadata["task_source"] == f"the first {role} message [run_id: step-2]"


def test_a_magentic_one_log_plans_without_expect(tmp_path, capsys, monkeypatch):
    import asyncio

    from refinery.app.cli import amain

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    path = tmp_path / "magentic.json"
    path.write_text(
        json.dumps([{"role": "human", "content": "Find the opening hours."}, {"role": "WebSurfer", "content": "ok"}])
    )
    assert asyncio.run(amain(["plan", str(path)])) == 0
    assert "task (from the first human message [run_id: step-0]): Find the opening hours." in capsys.readouterr().out
