"""The test server's own strict-mode rules: it refuses what the API refuses, with no help from
the client's checker."""

from __future__ import annotations

import pytest

from refinery.analysis.staged_schemas import STAGE_SCHEMAS
from refinery.testing.strict_rules import strict_violations

OK = {
    "type": "object",
    "properties": {"a": {"type": ["string", "null"]}},
    "required": ["a"],
    "additionalProperties": False,
}


@pytest.mark.parametrize("stage", sorted(STAGE_SCHEMAS))
def test_the_stage_schemas_pass(stage):
    assert strict_violations(STAGE_SCHEMAS[stage]) == []


@pytest.mark.parametrize(
    ("schema", "problem"),
    [
        ({**OK, "additionalProperties": True}, "'additionalProperties' must be false"),
        ({**OK, "required": []}, "every property must be required"),
        ({**OK, "properties": {"a": {"type": "array"}}}, "an array needs 'items'"),
        ({**OK, "properties": {"a": {"type": "object"}}}, "(root)/a: an object needs 'properties'"),
        ({"anyOf": [OK]}, "the root must be an object schema"),
        ({**OK, "properties": {"a": {"oneOf": [{"type": "string"}]}}}, "'oneOf' is not supported"),
        ({**OK, "properties": {"a": {"$ref": "#/$defs/missing"}}}, "does not point into $defs"),
    ],
)
def test_a_broken_rule_is_named_with_its_path(schema, problem):
    assert any(problem in p for p in strict_violations(schema)), strict_violations(schema)
