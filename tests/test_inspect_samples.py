"""Inspect AI logs as inspect_ai writes them: text kept once in `attachments` and a `message_pool`,
scorers that call a model of their own, samples run in several epochs.

The fixture `inspect_epochs.json` is the project's own, in the shape of the public logs in
../shared/trace-samples/inspect (span events, `attachment://` references in the events, a model
call's `input_refs` into the pool); the real logs are checked at the end when present.
"""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import pytest

from refinery.core.models import RunType
from refinery.errors import TraceFormatError
from refinery.testing.openapi_spec import find_shared
from refinery.traces import load_trace, load_traces
from refinery.traces.inspect_events import message_text, resolved
from refinery.traces.render import render_trace_files

FIX = Path(__file__).parent / "fixtures"
EPOCHS = FIX / "inspect_epochs.json"
SHARED = find_shared()
REAL = SHARED / "trace-samples" / "inspect" if SHARED else None


def rendered(trace) -> str:
    return "\n".join(text for _, text in render_trace_files(trace))


def flat(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


@pytest.fixture
def first_epoch():
    return load_trace(EPOCHS, sample="lyon:1")


def test_attachment_references_are_replaced_by_their_text_in_inputs_outputs_and_tool_results(first_epoch):
    text = rendered(first_epoch)
    assert "attachment://" not in text
    tool = next(r for r in first_epoch.runs if r.run_type == RunType.TOOL)
    assert tool.outputs["result"].startswith("Lyon — INSEE census results. Commune population: 522,250")
    answer = first_epoch.runs[-1].outputs["content"]
    assert answer.startswith("The commune of Lyon had 516,092 inhabitants")  # the wrong answer, from an attachment
    assert answer in text


def test_a_model_call_with_input_refs_shows_the_pooled_messages_it_was_sent(first_epoch):
    first = first_epoch.runs[0]
    assert first.inputs["new input messages"] == [
        {
            "role": "user",
            "content": "What was the population of Lyon (the commune, not the metropolis) in the 2021 census? "
            "Use the INSEE figure and give the number alone.",
        }
    ]


def test_the_system_message_is_shown_once_where_the_agent_first_receives_it(first_epoch):
    first, _, second = first_epoch.runs
    assert first.inputs["system message"].startswith("You are a research assistant.")
    assert "system message" not in second.inputs
    assert rendered(first_epoch).count("You are a research assistant.") == 1


def test_a_tool_result_rendered_as_its_own_run_is_not_repeated_as_the_next_calls_input(first_epoch):
    second = first_epoch.runs[2]
    assert second.inputs == {}  # its new input is the tool result: the web_fetch run shows it


def test_the_scorers_model_call_is_a_label_never_a_step_of_the_agent(first_epoch):
    assert [r.name for r in first_epoch.runs] == ["openai/gpt-4o", "web_fetch", "openai/gpt-4o"]
    [judge] = first_epoch.metadata["labels"]["scorer_calls"]
    assert judge["scorer"] == "model_graded_fact" and judge["model"] == "openai/gpt-4o-mini"
    assert judge["output"] == "GRADE: I" and "[Expert]: 522,250" in judge["input"][0]["content"]
    text = rendered(first_epoch)
    assert "GRADE" not in text and "gpt-4o-mini" not in text and "[Expert]" not in text


def test_legacy_step_events_mark_a_scorer_too():
    sample = {
        "id": 1,
        "epoch": 1,
        "input": "Say yes.",
        "events": [
            {"event": "step", "action": "begin", "type": "solver", "name": "generate"},
            {
                "event": "model",
                "model": "m/agent",
                "input": [],
                "output": {"choices": [{"message": {"content": "no"}}]},
            },
            {"event": "step", "action": "end", "type": "solver", "name": "generate"},
            {"event": "step", "action": "begin", "type": "scorer", "name": "judge"},
            {"event": "model", "model": "m/judge", "input": [], "output": {"choices": [{"message": {"content": "I"}}]}},
            {"event": "step", "action": "end", "type": "scorer", "name": "judge"},
        ],
    }
    trace = load_trace({"eval": {"task": "t"}, "samples": [sample]})
    assert [r.name for r in trace.runs] == ["m/agent"]
    assert trace.metadata["labels"]["scorer_calls"][0]["model"] == "m/judge"


def test_samples_run_in_several_epochs_are_named_id_and_epoch():
    traces = load_traces(EPOCHS)
    assert [t.metadata["sample_id"] for t in traces] == ["lyon:1", "lyon:2", "paris"]
    assert [t.trace_id for t in traces] == ["census-lyon", "census-lyon-epoch2", "census-paris"]
    assert load_trace(EPOCHS, sample="lyon:2").runs[-1].outputs["content"] == "522,250"
    assert load_trace(EPOCHS, sample="paris").trace_id == "census-paris"  # an id run once needs no epoch


def test_an_id_run_in_several_epochs_is_refused_with_the_forms_sample_takes():
    with pytest.raises(TraceFormatError, match=r"sample 'lyon' ran 2 times; pick one with --sample lyon:1 or lyon:2"):
        load_trace(EPOCHS, sample="lyon")


def write_eval(path: Path, log: dict) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("header.json", json.dumps({k: v for k, v in log.items() if k != "samples"}))
        for s in log["samples"]:
            z.writestr(f"samples/{s['id']}_epoch_{s['epoch']}.json", json.dumps(s))
    return path


def test_plan_lists_every_sample_and_epoch(tmp_path, capsys, monkeypatch):
    import asyncio

    from refinery.app.cli import amain

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    path = write_eval(tmp_path / "census.eval", json.loads(EPOCHS.read_text()))
    assert asyncio.run(amain(["plan", str(path), "--json"])) == 0
    out = json.loads(capsys.readouterr().out)
    assert [t["sample_id"] for t in out["traces"]] == ["lyon:1", "lyon:2", "paris"]


def test_batch_over_a_folder_with_a_multi_epoch_log_gives_each_sample_its_own_folder(tmp_path):
    from refinery.app.batch import discover

    write_eval(tmp_path / "census.eval", json.loads(EPOCHS.read_text()))
    (tmp_path / "other.json").write_text(
        json.dumps([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}])
    )
    items = discover(tmp_path)
    assert [(i.name, i.sample) for i in items] == [
        ("census-lyon-1", "lyon:1"),
        ("census-lyon-2", "lyon:2"),
        ("census-paris", "paris"),
        ("other", None),
    ]


async def test_batch_analyses_every_epoch(openai_env, tmp_path):
    from refinery.app.batch import analyze_many, discover
    from refinery.wire.responses_client import ResponsesClient

    write_eval(tmp_path / "census.eval", json.loads(EPOCHS.read_text()))
    async with ResponsesClient(api_key="sk-x", base_url=openai_env.base_url) as client:
        summary = await analyze_many(discover(tmp_path), out_dir=tmp_path / "out", client=client)
    assert sorted(summary.outcomes) == ["census-lyon-1", "census-lyon-2", "census-paris"]
    assert all(o.status == "done" for o in summary.outcomes.values())


def real_samples(path: Path) -> list[dict]:
    if path.suffix == ".eval":
        with zipfile.ZipFile(path) as z:
            names = sorted(n for n in z.namelist() if n.startswith("samples/") and n.endswith(".json"))
            return [json.loads(z.read(n)) for n in names]
    return json.loads(path.read_text())["samples"]


@pytest.mark.skipif(REAL is None or not REAL.is_dir(), reason="../shared/trace-samples/inspect not present")
def test_every_message_of_the_public_inspect_logs_reaches_the_rendered_files():
    logs = sorted(p for p in REAL.iterdir() if p.suffix in (".eval", ".json"))
    checked = 0
    for path in logs:
        for sample, trace in zip(real_samples(path), load_traces(path), strict=True):
            text = flat(rendered(trace))
            assert "attachment://" not in text, path.name
            for message in resolved(sample).get("messages") or []:
                body = flat(message_text(message))
                if body:
                    checked += 1
                    assert body in text, (path.name, sample["id"], message.get("role"), body[:80])
    assert checked >= 60


def test_an_attached_image_is_named_not_inlined():
    image = "data:image/png;base64," + "iVBORw0KGgo" * 200
    sample = {
        "messages": [{"role": "user", "content": [{"type": "image", "image": "attachment://img"}]}],
        "attachments": {"img": image},
    }
    block = resolved(sample)["messages"][0]["content"][0]
    assert block["image"] == f"[image/png data, {len(image)} characters, not shown]"


def test_the_first_user_message_of_an_unknown_shape_is_no_example(tmp_path):
    path = tmp_path / "odd.json"
    messages = [
        {"role": "human", "content": "Here is an example of a request: refund order 1."},
        {"role": "human", "content": "Refund order 77."},
    ]
    path.write_text(json.dumps({"run": {"log": {"conversation": messages}}}))
    trace = load_trace(path)
    assert trace.metadata["task"] == "Refund order 77."
    assert trace.metadata["task_source"] == "the first user message ($.run.log.conversation[1])"


def test_a_message_written_again_word_for_word_is_new_again():
    """A react agent's "please continue" prompt, in a log whose messages carry no ids."""

    def model(inputs: list[dict], answer: str) -> dict:
        return {
            "event": "model",
            "model": "m",
            "input": inputs,
            "output": {"choices": [{"message": answer_of(answer)}]},
        }

    def answer_of(text: str) -> dict:
        return {"role": "assistant", "content": text}

    nudge = {"role": "user", "content": "Please proceed to the next step."}
    task = {"role": "user", "content": "Count the files."}
    events = [
        model([task], "Thinking."),
        model([task, answer_of("Thinking."), nudge], "Still thinking."),
        model([task, answer_of("Thinking."), nudge, answer_of("Still thinking."), nudge], "12"),
    ]
    trace = load_trace({"eval": {"task": "t"}, "samples": [{"id": 1, "input": "Count the files.", "events": events}]})
    shown = [[m["content"] for m in r.inputs.get("new input messages", [])] for r in trace.runs]
    assert shown == [["Count the files."], ["Please proceed to the next step."], ["Please proceed to the next step."]]


def test_a_model_call_in_the_grader_role_is_a_label_wherever_it_runs():
    def model(name: str, text: str, **extra) -> dict:
        return {
            "event": "model",
            "model": name,
            "input": [],
            "output": {"choices": [{"message": {"content": text}}]},
            **extra,
        }

    events = [model("m/agent", "42"), model("m/judge", "GRADE: C", role="grader")]
    trace = load_trace({"eval": {"task": "t"}, "samples": [{"id": 1, "input": "Answer.", "events": events}]})
    assert [r.name for r in trace.runs] == ["m/agent"]
    assert trace.metadata["labels"]["scorer_calls"][0]["scorer"] == "the grader model"
