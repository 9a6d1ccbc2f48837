"""Traces fetched by id from Phoenix's REST API (mocked with aioresponses, in the shape a real
Phoenix answered: tests/fixtures/phoenix_spans.json is its page of the spans this project sent it).
The real server is exercised end to end in test_phoenix_live.py."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from refinery.errors import ConfigurationError, UserInputError
from refinery.traces import load_trace
from refinery.traces.sources import SourceRef, failed_traces, fetch_trace, is_source_ref

FIX = Path(__file__).parent / "fixtures"
PX = "http://localhost:6006"
TRACE = "68efeb5e0451d86531a041b5a9a372f9"
SPANS = json.loads((FIX / "phoenix_spans.json").read_text())["data"]
KEY = "px-" + "k" * 30


def spans_url(project: str) -> re.Pattern[str]:
    return re.compile(rf"^{re.escape(PX)}/v1/projects/{project}/spans\?.*")


def test_a_phoenix_reference_may_name_its_project():
    assert is_source_ref(f"phoenix:{TRACE.upper()}") == SourceRef("phoenix", TRACE)
    assert is_source_ref(f"phoenix:support-bot/{TRACE}") == SourceRef("phoenix", TRACE, "support-bot")
    assert is_source_ref(f"phoenix:{TRACE}", project="p2") == SourceRef("phoenix", TRACE, "p2")
    assert str(SourceRef("phoenix", TRACE, "p2")) == f"phoenix:p2/{TRACE}"
    with pytest.raises(UserInputError, match="expected phoenix:<trace-id> or phoenix:<project>/<trace-id>"):
        is_source_ref("phoenix:proj/")


async def test_without_a_project_each_project_is_searched_and_the_spans_come_page_by_page(mocked):
    mocked.get(f"{PX}/v1/projects?limit=100", payload={"data": [{"name": "default"}], "next_cursor": "P2"})
    mocked.get(f"{PX}/v1/projects?limit=100&cursor=P2", payload={"data": [{"name": "support"}], "next_cursor": None})
    mocked.get(spans_url("default"), payload={"data": [], "next_cursor": None})
    mocked.get(spans_url("support"), payload={"data": SPANS[:2], "next_cursor": "U3Bhbjox"})
    mocked.get(spans_url("support"), payload={"data": SPANS[2:], "next_cursor": None})
    data = await fetch_trace(SourceRef("phoenix", TRACE), env={"PHOENIX_API_KEY": KEY})
    assert data["project"] == "support" and len(data["data"]) == 3
    urls = [str(u) for (_, u), calls in mocked.requests.items() for _ in calls]
    assert f"{PX}/v1/projects/support/spans?cursor=U3Bhbjox&limit=1000&trace_id={TRACE}" in urls
    sent = [c.kwargs["headers"] for cs in mocked.requests.values() for c in cs]
    assert all(h == {"Authorization": f"Bearer {KEY}"} for h in sent)
    trace = load_trace(data)
    assert trace.project_name == "support"
    assert trace.trace_id == TRACE and [r.name for r in trace.runs] == ["agent", "ChatOpenAI", "lookup_order"]
    assert trace.runs[2].is_failed and "order 1234 not found in region EU" in trace.runs[2].error


async def test_the_collector_endpoint_is_the_base_and_a_named_project_is_the_only_one_asked(mocked):
    other = "http://phoenix.internal:6006"
    mocked.get(re.compile(rf"^{re.escape(other)}/v1/projects/ops/spans\?.*"), payload={"data": SPANS})
    env = {"PHOENIX_COLLECTOR_ENDPOINT": f"{other}/v1/traces", "PHOENIX_PROJECT_NAME": "ops"}
    data = await fetch_trace(SourceRef("phoenix", TRACE), env=env)
    assert len(data["data"]) == 3
    [(_, url)] = list(mocked.requests)
    assert str(url).startswith(f"{other}/v1/projects/ops/spans") and "v1/traces" not in str(url)
    [call] = [c for cs in mocked.requests.values() for c in cs]
    assert call.kwargs["headers"] == {}  # no key set: no Authorization header at all


async def test_an_unknown_project_is_a_404_naming_it(mocked):
    mocked.get(spans_url("nope"), status=404, payload={"detail": "Project not found"})
    with pytest.raises(UserInputError, match=rf"phoenix: no trace {TRACE} \(project 'nope'\) in {PX} \(HTTP 404\)"):
        await fetch_trace(SourceRef("phoenix", TRACE, "nope"), env={})


async def test_a_trace_in_no_project_names_the_projects_searched(mocked):
    mocked.get(f"{PX}/v1/projects?limit=100", payload={"data": [{"name": "a"}, {"name": "b"}]})
    mocked.get(spans_url("a"), payload={"data": []})
    mocked.get(spans_url("b"), payload={"data": []})
    with pytest.raises(UserInputError, match=rf"phoenix: no trace {TRACE} in {PX} \(projects searched: 'a', 'b'\)"):
        await fetch_trace(SourceRef("phoenix", TRACE), env={})


async def test_a_401_names_the_key_variable_and_never_the_key(mocked):
    mocked.get(spans_url("p"), status=401, payload={"detail": "Invalid token"})
    with pytest.raises(ConfigurationError, match=f"phoenix: HTTP 401 from {PX}: check PHOENIX_API_KEY") as err:
        await fetch_trace(SourceRef("phoenix", TRACE, "p"), env={"PHOENIX_API_KEY": KEY})
    assert KEY not in str(err.value)


async def test_batch_from_phoenix_lists_the_traces_with_an_error_span_since_then(mocked):
    # two ERROR spans of one trace, and a span that is not failed (a server that ignored the filter)
    ok = {**SPANS[2], "context": {"trace_id": "f" * 32, "span_id": "bb"}}
    mocked.get(spans_url("support"), payload={"data": [*SPANS, ok], "next_cursor": None})
    ids = await failed_traces("phoenix", 3600, project="support", env={})
    assert ids == [f"support/{TRACE}"]
    [(_, url)] = list(mocked.requests)
    assert url.query["status_code"] == "ERROR" and url.query["start_time"].endswith("+00:00")


async def test_the_key_is_in_no_file_refinery_writes(openai_env, tmp_path, monkeypatch):
    import aioresponses

    from refinery.app.cli import amain

    monkeypatch.setenv("PHOENIX_API_KEY", KEY)
    monkeypatch.setenv("PHOENIX_PROJECT", "support")
    out = tmp_path / "out"
    with aioresponses.aioresponses(passthrough=["http://127.0.0.1"]) as m:  # the local OpenAI server is real
        m.get(spans_url("support"), payload={"data": SPANS, "next_cursor": None})
        assert await amain(["run", f"phoenix:{TRACE}", "--out", str(out)]) == 0
    assert json.loads((out / "trace.json").read_text())["refinery_source"] == f"phoenix:{TRACE}"
    written = [p for p in out.rglob("*") if p.is_file()]
    assert len(written) > 5 and not [p for p in written if KEY in p.read_text(errors="replace")]


async def test_the_library_loads_a_trace_by_id_in_memory_or_kept_in_a_folder(mocked, tmp_path):
    from refinery import load_trace_from

    mocked.get(spans_url("support"), payload={"data": SPANS}, repeat=True)
    env = {"PHOENIX_PROJECT": "support"}
    trace = await load_trace_from(f"phoenix:{TRACE}", env=env)
    assert trace.trace_id == TRACE and trace.runs[2].is_failed and trace.project_name == "support"
    kept = await load_trace_from(f"phoenix:{TRACE}", folder=tmp_path, env=env)
    assert [r.id for r in kept.runs] == [r.id for r in trace.runs]
    assert json.loads((tmp_path / "trace.json").read_text())["refinery_source"] == f"phoenix:{TRACE}"
    with pytest.raises(UserInputError, match="not a trace by id; expected langsmith:<id>"):
        await load_trace_from("trace.json")


def test_a_batch_manifest_may_name_a_phoenix_trace_with_its_project(tmp_path):
    from refinery.app.batch import discover

    manifest = tmp_path / "batch.json"
    manifest.write_text(json.dumps([{"trace": f"phoenix:support/{TRACE}"}]))
    [item] = discover(manifest)
    assert item.name == TRACE and item.trace == f"phoenix:support/{TRACE}"
    assert is_source_ref(item.trace) == SourceRef("phoenix", TRACE, "support")


async def test_a_server_that_ignores_the_trace_filter_is_refused_at_its_first_page(mocked):
    other = {**SPANS[0], "context": {"trace_id": "0" * 31 + "1", "span_id": "aa"}}
    mocked.get(spans_url("support"), payload={"data": [SPANS[0], other], "next_cursor": "more"})
    from refinery.traces.sources import SourceError

    with pytest.raises(SourceError, match="answered spans of other traces .* older than 13.9"):
        await fetch_trace(SourceRef("phoenix", TRACE, "support"), env={})
    assert sum(len(calls) for calls in mocked.requests.values()) == 1  # not the whole project
