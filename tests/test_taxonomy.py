"""One taxonomy of errors, mapped to TRAIL's spellings and to the host's FailureType."""

from __future__ import annotations

import pytest

from refinery.core.models import FailureType
from refinery.core.taxonomy import FAILURE_TYPES, TRAIL_NAMES, ErrorCategory, trail_category, trail_name


def test_every_category_maps_to_a_failure_type_and_all_but_other_to_a_trail_name():
    assert set(FAILURE_TYPES) == set(ErrorCategory)
    assert all(isinstance(v, FailureType) for v in FAILURE_TYPES.values())
    assert set(TRAIL_NAMES) == set(ErrorCategory) - {ErrorCategory.OTHER}
    assert trail_name(ErrorCategory.OTHER) == "Other"


@pytest.mark.parametrize("category", [c for c in ErrorCategory if c is not ErrorCategory.OTHER])
def test_trail_names_and_our_ids_both_read_back_as_the_category(category):
    assert trail_category(TRAIL_NAMES[category]) is category
    assert trail_category(category.value) is category


@pytest.mark.parametrize(
    ("spelling", "category"),
    [
        ("Language-Only", ErrorCategory.LANGUAGE_ONLY_HALLUCINATION),
        ("Context Handling Failure", ErrorCategory.CONTEXT_HANDLING_FAILURE),
        ("Instruction non complience", ErrorCategory.INSTRUCTION_NON_COMPLIANCE),
        ("tool selection error", ErrorCategory.TOOL_SELECTION_ERROR),
    ],
)
def test_annotation_spellings_match_loosely(spelling, category):
    assert trail_category(spelling) is category


def test_an_unknown_label_matches_nothing():
    assert trail_category("The weather was bad") is None


def test_the_taxonomy_holds_every_category_of_trails_official_list():
    from refinery.core.taxonomy import TRAIL_NAMES, ErrorCategory, trail_category
    from refinery.eval.official import TRAIL_CATEGORIES

    assert sorted(TRAIL_NAMES.values()) == sorted(TRAIL_CATEGORIES) and len(TRAIL_CATEGORIES) == 21
    assert trail_category("Incorrect Memory Usage") == ErrorCategory.INCORRECT_MEMORY_USAGE
