"""`refinery --help`, `--version`, a command's `--help` and a usage error answer without loading the HTTP
client, the schema validator, pydantic, asyncio or refinery's own layers below the command line: they
are what made start-up 22 × a bare Python (issue 37). The time itself is measured in docs/benchmarks.md."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"

HEAVY = ("aiohttp", "jsonschema", "pydantic", "asyncio", "refinery.core.models", "refinery.traces", "refinery.wire")

# main() run as the console script runs it; what it loaded goes to stderr after its own output
PROBE = """
import json, sys
from refinery.app.cli import main
code = main(sys.argv[1:])
heavy = {heavy!r}
sys.stderr.write("\\nLOADED " + json.dumps([m for m in heavy if m in sys.modules]) + " EXIT " + str(code) + "\\n")
"""


def _started(*argv: str) -> tuple[str, list[str], int]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY), *argv], capture_output=True, text=True, timeout=60
    )
    said, _, probe = done.stderr.rpartition("\nLOADED ")
    loaded, _, code = probe.partition(" EXIT ")
    return done.stdout + said, json.loads(loaded), int(code)


@pytest.mark.parametrize(
    ("argv", "says", "code"),
    [
        (["--help"], "usage: refinery", 0),
        (["--version"], "refinery 0.1", 0),
        (["run", "--help"], "usage: refinery run", 0),
        (["plan", "--help"], "usage: refinery plan", 0),
        (["batch", "--help"], "usage: refinery batch", 0),
        (["run"], "the following arguments are required", 2),
    ],
)
def test_the_command_line_answers_without_the_heavy_modules(argv, says, code):
    output, loaded, exit_code = _started(*argv)
    assert says in output
    assert exit_code == code
    assert loaded == []


def test_the_applications_package_loads_its_analysis_only_when_asked():
    code = (
        "import sys, refinery.app as app; analyst = 'refinery.analysis.staged_failure_analyst'; "
        "before = analyst in sys.modules; app.analyze_into; print(before, analyst in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.split() == ["False", "True"]


def test_a_command_that_runs_loads_what_it_needs_in_its_own_body():
    """The imports moved into the commands are there when one runs: `plan` of a small OTLP trace."""
    output, loaded, exit_code = _started("plan", str(FIXTURES / "otlp_trace.json"), "--json")
    assert exit_code == 0
    assert json.loads(output)["runs"] > 0
    assert {"pydantic", "refinery.core.models", "refinery.traces"} <= set(loaded)


def test_plan_loads_no_http_client_and_no_schema_validator():
    """`refinery plan` is offline: it sends nothing and validates no answer, so the HTTP client (a third
    of its start-up, most of it building TLS contexts) and the JSON Schema validator stay unloaded."""
    output, loaded, exit_code = _started("plan", str(FIXTURES / "otlp_trace.json"), "--json")
    assert exit_code == 0
    assert json.loads(output)["runs"] > 0
    assert "aiohttp" not in loaded
    assert "jsonschema" not in loaded
