"""The four stage schemas are strict-valid and round-trip sample outputs through their models."""

from __future__ import annotations

import sys
from typing import Literal

import jsonschema
import pytest
from pydantic import BaseModel

from refinery.analysis import staged_schemas as ss
from refinery.core.strict_schema import make_strict, strict_problems
from refinery.errors import StrictSchemaError
from tests.fake_openai import SAMPLES
from tests.helpers import SHARED

SCHEMAS = {
    "stage1": ss.TRACE_ANALYSIS_SCHEMA,
    "stage2": ss.GAP_ANALYSIS_SCHEMA,
    "stage3": ss.DIAGNOSIS_SCHEMA,
    "stage4": ss.SYNTHESIS_SCHEMA,
}


@pytest.mark.parametrize("stage", SCHEMAS)
def test_schema_passes_our_strict_lint(stage):
    assert strict_problems(SCHEMAS[stage]) == []


@pytest.mark.parametrize("stage", SCHEMAS)
def test_schema_passes_the_shared_strict_lint(stage):
    tool = SHARED / "tools" / "strict_lint.py"
    if not tool.exists():
        pytest.skip("../shared/tools/strict_lint.py not present")
    sys.path.insert(0, str(tool.parent))
    try:
        from strict_lint import lint
    finally:
        sys.path.remove(str(tool.parent))
    assert lint(SCHEMAS[stage]) == []


@pytest.mark.parametrize("stage", SCHEMAS)
def test_sample_output_round_trips(stage):
    sample = SAMPLES[stage]
    jsonschema.Draft202012Validator(SCHEMAS[stage]).validate(sample)
    model = ss.STAGE_MODELS[stage].model_validate(sample)
    assert model.model_dump(mode="json") == sample


def test_schema_rejects_an_extra_field():
    bad = {**SAMPLES["stage4"], "extra": 1}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(ss.SYNTHESIS_SCHEMA).validate(bad)


def test_stage1_statuses_are_closed():
    assert ss.TRACE_ANALYSIS_SCHEMA["properties"]["timeline"]["items"]["properties"]["status"]["enum"] == [
        "ok",
        "error",
        "partial",
        "not stated",
    ]


class Inner(BaseModel):
    note: str | None = None
    kind: Literal["a", "b"]


class Outer(BaseModel):
    title: str
    inner: Inner
    maybe: Inner | None = None
    many: list[Inner] = []


def test_make_strict_closes_requires_and_inlines():
    schema = make_strict(Outer.model_json_schema())
    assert "$defs" not in schema and "$ref" not in str(schema)
    assert schema["required"] == ["title", "inner", "maybe", "many"]
    assert schema["additionalProperties"] is False
    inner = schema["properties"]["inner"]
    assert inner["additionalProperties"] is False and inner["required"] == ["note", "kind"]
    assert {"type": "null"} in inner["properties"]["note"]["anyOf"]
    assert {"type": "null"} in schema["properties"]["maybe"]["anyOf"]
    assert "title" not in str(schema["properties"]["title"])
    assert strict_problems(schema) == []


def test_make_strict_turns_one_of_into_any_of():
    schema = make_strict(
        {"type": "object", "properties": {"x": {"oneOf": [{"type": "string"}, {"type": "integer"}]}}, "required": ["x"]}
    )
    assert schema["properties"]["x"] == {"anyOf": [{"type": "string"}, {"type": "integer"}]}


def test_make_strict_inlines_ref_siblings():
    raw = {
        "type": "object",
        "properties": {"c": {"$ref": "#/$defs/C", "description": "the c"}},
        "required": ["c"],
        "$defs": {"C": {"type": "object", "properties": {"v": {"type": "string"}}, "required": ["v"]}},
    }
    c = make_strict(raw)["properties"]["c"]
    assert c["description"] == "the c" and c["properties"] == {"v": {"type": "string"}}


def test_make_strict_refuses_a_free_form_map():
    class WithMap(BaseModel):
        labels: dict[str, str]

    with pytest.raises(StrictSchemaError, match="key/value"):
        make_strict(WithMap.model_json_schema())


def test_token_estimates_of_long_texts_count_as_one_pass_over_the_pieces_would():
    import random
    import re

    from refinery.core import tokens

    pieces = re.compile(tokens._PIECE.pattern)  # one pass over the whole text
    rng = random.Random(7)
    for n in (100, 70_000, 200_003):
        text = "".join(rng.choice('ab cd12 ,.;\n{}"xyzLONGWORDS  \t') for _ in range(n))
        assert tokens.estimate_tokens(text) == sum(1 for _ in pieces.finditer(text)), n
