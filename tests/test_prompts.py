"""The user's prompts stay word for word, are versioned, and fill safely with JSON."""

from __future__ import annotations

import re

import pytest

from refinery.errors import RefineryError
from refinery.prompts import system_prompts as sp
from tests.helpers import SHARED

PRESERVED = {
    "SYSTEM_PROMPT": sp.FAILURE_ANALYST_SYSTEM_PROMPT_V3,
    "STAGE1_USER_PROMPT": sp.STAGE1_TRACE_ANALYSIS_PROMPT_V1,
    "STAGE2_USER_PROMPT": sp.STAGE2_GAP_ANALYSIS_PROMPT_V1,
    "STAGE3_USER_PROMPT": sp.STAGE3_DIAGNOSIS_PROMPT_V1,
    "STAGE4_USER_PROMPT": sp.STAGE4_SYNTHESIS_PROMPT_V1,
}


@pytest.mark.parametrize("name", PRESERVED)
def test_preserved_prompts_match_the_plan_word_for_word(name):
    plan = SHARED / "seed" / "refactor-plan.md"
    if not plan.exists():
        pytest.skip("../shared/seed/refactor-plan.md not present")
    m = re.search(rf'{name} = """(.*?)"""', plan.read_text(encoding="utf-8"), re.S)
    assert m, f"{name} not found in the plan"
    assert PRESERVED[name] == m.group(1)


def test_each_stage_prompt_carries_the_version_its_artifacts_record():
    from refinery.analysis.stages import STAGES

    assert [s.prompt.ref for s in STAGES] == [
        f"STAGE{n}_{t}_PROMPT@v1"
        for n, t in ((1, "TRACE_ANALYSIS"), (2, "GAP_ANALYSIS"), (3, "DIAGNOSIS"), (4, "SYNTHESIS"))
    ]
    assert (
        STAGES[2].prompt_ref == "STAGE3_DIAGNOSIS_PROMPT@v1+STAGE3_LOCALISATION_NOTE@v1"
    )  # the plan's prompt word for word, plus a versioned note
    assert sp.SYSTEM.ref == "FAILURE_ANALYST_SYSTEM_PROMPT@v3" and sp.STAGE3.text == sp.STAGE3_DIAGNOSIS_PROMPT_V1


def test_only_real_slots_are_placeholders():
    assert sp.STAGE1.placeholders == ()
    assert sp.SYSTEM.placeholders == ()  # "{file, section_or_lines}" is text, not a slot
    assert sp.STAGE4.placeholders == ("stage1_json", "stage2_json", "stage3_json")


def test_fill_leaves_braces_in_values_alone():
    value = '{"timeline": [{"action": "use {stage2_json} literally"}], "x": "{0}"}'
    text = sp.STAGE3.fill(stage1_json=value, stage2_json="{}")
    assert value in text
    assert text.endswith("Stage 2 Results:\n{}")
    assert "{symptom -> mechanism -> cause}" in text


def test_fill_refuses_missing_or_unknown_values():
    with pytest.raises(RefineryError, match="missing values \\['stage2_json'\\]"):
        sp.STAGE3.fill(stage1_json="{}")
    with pytest.raises(RefineryError, match="unknown values \\['stage9_json'\\]"):
        sp.STAGE2.fill(stage1_json="{}", stage9_json="{}")
