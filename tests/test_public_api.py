"""The public API is `refinery.__all__`: every name resolves, the API page lists exactly those
names, and a bare `import refinery` loads no HTTP client, schema validator or model (issue 31)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import refinery

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_every_public_name_resolves():
    missing = [name for name in refinery.__all__ if not hasattr(refinery, name)]
    assert missing == []


def test_the_api_page_lists_exactly_the_public_names():
    listed = set(re.findall(r"^\| `([A-Za-z_]\w*)` \|", (DOCS / "api.md").read_text(), flags=re.M))
    assert listed == set(refinery.__all__) - {"__version__"}


def test_what_a_caller_needs_next_is_public():
    for name in ("usage_summary", "BatchItem", "RenderOptions", "CostCeiling", "ContextBudgetError", "CostLimitError"):
        assert name in refinery.__all__
    for name in ("TraceAnalysisOutput", "GapAnalysisOutput", "DiagnosisOutput", "SynthesisOutput", "analyze_into"):
        assert name in refinery.__all__


def test_a_bare_import_loads_no_http_client_validator_or_models():
    code = "import sys, refinery; print(sorted(m for m in ('aiohttp', 'jsonschema', 'pydantic') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_an_unknown_name_is_an_attribute_error():
    try:
        refinery.NoSuchThing  # noqa: B018
    except AttributeError as exc:
        assert "NoSuchThing" in str(exc)
    else:
        raise AssertionError("no AttributeError")
