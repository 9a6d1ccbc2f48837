"""A newcomer's first commands: `refinery demo` with no key and no network, `--version`, help
that says what each command does."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from refinery.app.cli import amain, build_parser


def test_demo_runs_the_whole_pipeline_with_no_key_as_a_real_process(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    proc = subprocess.run(
        [sys.executable, "-m", "refinery", "demo", "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["stand_in_model"] is True and "not an analysis" in data["notice"]
    out = tmp_path / "refinery-demo"
    for name in ("stage1_trace_analysis.json", "stage4_synthesis.json", "report.html", "report.md", "usage.json"):
        assert (out / name).is_file(), name
    report = (out / "report.md").read_text()
    assert "lookup_order" in report  # the example trace's failing tool
    assert "\u2068" not in report and "\u2069" not in report  # no right-to-left text: no isolation marks
    diagnosis = json.loads((out / "stage3_diagnosis.json").read_text())["output"]
    # the stand-in's verdict names the failing run of the example and quotes its error; its agent is a
    # name the example writes (which one: what the stand-in's search returned from a store sized search)
    assert diagnosis["decisive_step"]["run_id"] == "b2000000000000b2"
    assert diagnosis["responsible_agent"] in ("RefundBot", "lookup_order")
    assert "KeyError: 'order_id'" in diagnosis["root_cause"] and "lookup_order" in diagnosis["root_cause"]
    assert "Stand-in heuristic" in json.loads((out / "stage4_synthesis.json").read_text())["output"]["summary"]
    assert "stand-in model" in json.loads((out / "usage.json").read_text())["stand_in_model"]


async def test_demo_says_plainly_the_answers_come_from_a_stand_in(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert await amain(["demo", "--out", str(tmp_path / "d")]) == 0
    out = capsys.readouterr().out
    assert "stand-in model" in out and "they are not an analysis" in out
    assert f"report: {tmp_path / 'd' / 'report.html'}" in out


def test_version_is_printed(capsys):
    proc = subprocess.run([sys.executable, "-m", "refinery", "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith("refinery 0.")


def test_every_command_describes_itself_and_model_has_help():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, command in sub.choices.items():
        assert command.description and len(command.description) > 60, name
        for action in command._actions:
            if action.dest == "model":
                assert action.help and "gpt-4o" in action.help, name
    assert "test server" in sub.choices["demo"].description
    assert "refinery demo" in sub.choices["run"].description


def test_the_spec_and_the_other_shared_files_are_found_by_one_rule(tmp_path, monkeypatch):
    from refinery.testing.openapi_spec import find_shared, find_spec

    (tmp_path / "openai-spec").mkdir()
    (tmp_path / "openai-spec" / "openapi.json").write_text("{}")
    monkeypatch.delenv("REFINERY_OPENAI_SPEC", raising=False)
    monkeypatch.setenv("REFINERY_SHARED", str(tmp_path))
    assert find_shared() == tmp_path and find_spec() == tmp_path / "openai-spec" / "openapi.json"
    monkeypatch.setenv("REFINERY_SHARED", str(tmp_path / "missing"))
    assert find_shared() is None and find_spec() is None  # no silent fallback to some other folder


async def test_the_readme_library_example_runs_as_written_and_closes_its_client(openai_server, tmp_path):
    import asyncio
    import re
    import shutil
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text()
    [code] = re.findall(r"## As a library\n\n```python\n(.*?)```", readme, re.S)
    (tmp_path / "example.py").write_text(code)
    shutil.copy(root / "tests" / "fixtures" / "plain_chat.json", tmp_path / "trace.json")
    shutil.copy(root / "tests" / "fixtures" / "expectation.json", tmp_path / "expected.json")
    env = {
        **os.environ,
        "OPENAI_API_KEY": "sk-local",
        "OPENAI_BASE_URL": openai_server.base_url,
        "PYTHONWARNINGS": "default",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "example.py",
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()
    assert out.decode().strip() and "Unclosed" not in err.decode()


def test_no_table_in_the_docs_is_broken_by_a_blank_line():
    """A blank line inside a Markdown table ends it: the rows after it render as a paragraph of pipes."""
    root = Path(__file__).resolve().parents[1]
    broken = []
    for page in [root / "README.md", *sorted((root / "docs").glob("*.md"))]:
        lines = page.read_text().splitlines()
        for i in range(1, len(lines) - 1):
            if not lines[i].strip() and lines[i - 1].startswith("|") and lines[i + 1].startswith("|"):
                broken.append(f"{page.name}:{i + 1}")
    assert broken == []


def test_every_snippet_that_builds_an_analyst_closes_its_session():
    """An analyst built without a client opens its own HTTP session: a snippet that never closes it
    ends in "Unclosed client session" for whoever copies it."""
    root = Path(__file__).resolve().parents[1]
    unclosed = []
    for page in [root / "README.md", *sorted((root / "docs").glob("*.md"))]:
        for block in page.read_text().split("```python")[1:]:
            for line in block.split("```")[0].splitlines():
                builds = "FailureAnalyst(" in line and "class " not in line and "client=" not in line
                if builds and not line.strip().startswith("async with"):
                    unclosed.append(f"{page.name}: {line.strip()}")
    assert unclosed == []


def test_every_environment_variable_the_package_reads_is_in_the_docs_table():
    root = Path(__file__).resolve().parents[1]
    # a name in quotes, not as a dict key: those are set for a child process (Phoenix's own settings)
    name = re.compile(r"[\"']((?:OPENAI|AZURE|LANGSMITH|LANGCHAIN|LANGFUSE|PHOENIX|REFINERY)_[A-Z_]+)[\"'](?!\s*:)")
    read = set()
    for path in (root / "refinery").rglob("*.py"):
        read |= set(name.findall(path.read_text()))
    page = (root / "docs" / "traces-and-cli.md").read_text()
    table = page.split("## Environment variables", 1)[1].split("\n## ", 1)[0]
    assert len(read) > 15
    assert sorted(v for v in read if f"`{v}`" not in table) == []
