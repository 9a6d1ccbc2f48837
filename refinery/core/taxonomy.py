"""One taxonomy of agent errors, and its mappings to TRAIL's categories and to `FailureType`.

Why this one: TRAIL (Deshpande et al. 2025, arXiv 2505.08638) is the published taxonomy for
exactly this task — localising errors in agent traces — with human labels to score against. Our
categories are its leaf categories as the paper's taxonomy figure names them (reasoning,
planning and coordination, system execution), with ids a model can emit in a strict enum, plus
`other`: all 21 of the official scorer's list (`eval.official.TRAIL_CATEGORIES`), and annotation
spellings we have not seen map loosely (`trail_category`) or to `other`.

`FailureType` (the host's coarser field) is derived, so one error list feeds both.
"""

from __future__ import annotations

import difflib
import re
from enum import Enum

from refinery.core.models import FailureType


class ErrorCategory(str, Enum):
    # reasoning
    LANGUAGE_ONLY_HALLUCINATION = "language_only_hallucination"
    TOOL_RELATED_HALLUCINATION = "tool_related_hallucination"
    POOR_INFORMATION_RETRIEVAL = "poor_information_retrieval"
    INCORRECT_MEMORY_USAGE = "incorrect_memory_usage"
    TOOL_OUTPUT_MISINTERPRETATION = "tool_output_misinterpretation"
    INCORRECT_PROBLEM_IDENTIFICATION = "incorrect_problem_identification"
    TOOL_SELECTION_ERROR = "tool_selection_error"
    FORMATTING_ERROR = "formatting_error"
    INSTRUCTION_NON_COMPLIANCE = "instruction_non_compliance"
    # system execution
    TOOL_DEFINITION_ISSUE = "tool_definition_issue"
    ENVIRONMENT_SETUP_ERROR = "environment_setup_error"
    RATE_LIMITING = "rate_limiting"
    AUTHENTICATION_ERROR = "authentication_error"
    SERVICE_ERROR = "service_error"
    RESOURCE_NOT_FOUND = "resource_not_found"
    RESOURCE_EXHAUSTION = "resource_exhaustion"
    TIMEOUT = "timeout"
    # planning and coordination
    CONTEXT_HANDLING_FAILURE = "context_handling_failure"
    RESOURCE_ABUSE = "resource_abuse"
    GOAL_DEVIATION = "goal_deviation"
    TASK_ORCHESTRATION = "task_orchestration"
    OTHER = "other"


C = ErrorCategory
# Our category → TRAIL's spelling of it (the label its annotations and scorer use).
TRAIL_NAMES: dict[ErrorCategory, str] = {
    C.LANGUAGE_ONLY_HALLUCINATION: "Language-only",
    C.TOOL_RELATED_HALLUCINATION: "Tool-related",
    C.POOR_INFORMATION_RETRIEVAL: "Poor Information Retrieval",
    C.INCORRECT_MEMORY_USAGE: "Incorrect Memory Usage",
    C.TOOL_OUTPUT_MISINTERPRETATION: "Tool Output Misinterpretation",
    C.INCORRECT_PROBLEM_IDENTIFICATION: "Incorrect Problem Identification",
    C.TOOL_SELECTION_ERROR: "Tool Selection Errors",
    C.FORMATTING_ERROR: "Formatting Errors",
    C.INSTRUCTION_NON_COMPLIANCE: "Instruction Non-compliance",
    C.TOOL_DEFINITION_ISSUE: "Tool Definition Issues",
    C.ENVIRONMENT_SETUP_ERROR: "Environment Setup Errors",
    C.RATE_LIMITING: "Rate Limiting",
    C.AUTHENTICATION_ERROR: "Authentication Errors",
    C.SERVICE_ERROR: "Service Errors",
    C.RESOURCE_NOT_FOUND: "Resource Not Found",
    C.RESOURCE_EXHAUSTION: "Resource Exhaustion",
    C.TIMEOUT: "Timeout Issues",
    C.CONTEXT_HANDLING_FAILURE: "Context Handling Failures",
    C.RESOURCE_ABUSE: "Resource Abuse",
    C.GOAL_DEVIATION: "Goal Deviation",
    C.TASK_ORCHESTRATION: "Task Orchestration",
}
FAILURE_TYPES: dict[ErrorCategory, FailureType] = {
    C.LANGUAGE_ONLY_HALLUCINATION: FailureType.MODEL_LIMITATION,
    C.TOOL_RELATED_HALLUCINATION: FailureType.MODEL_LIMITATION,
    C.POOR_INFORMATION_RETRIEVAL: FailureType.RETRIEVAL_ISSUE,
    C.INCORRECT_MEMORY_USAGE: FailureType.CONTEXT_ISSUE,  # what the agent kept or recalled, not what it was given
    C.TOOL_OUTPUT_MISINTERPRETATION: FailureType.MODEL_LIMITATION,
    C.INCORRECT_PROBLEM_IDENTIFICATION: FailureType.PROMPT_ISSUE,
    C.TOOL_SELECTION_ERROR: FailureType.ORCHESTRATION_ISSUE,
    C.FORMATTING_ERROR: FailureType.OUTPUT_PARSING_ISSUE,
    C.INSTRUCTION_NON_COMPLIANCE: FailureType.PROMPT_ISSUE,
    C.TOOL_DEFINITION_ISSUE: FailureType.CONTEXT_ISSUE,
    C.ENVIRONMENT_SETUP_ERROR: FailureType.ORCHESTRATION_ISSUE,
    C.RATE_LIMITING: FailureType.ORCHESTRATION_ISSUE,
    C.AUTHENTICATION_ERROR: FailureType.ORCHESTRATION_ISSUE,
    C.SERVICE_ERROR: FailureType.ORCHESTRATION_ISSUE,
    C.RESOURCE_NOT_FOUND: FailureType.ORCHESTRATION_ISSUE,
    C.RESOURCE_EXHAUSTION: FailureType.ORCHESTRATION_ISSUE,
    C.TIMEOUT: FailureType.ORCHESTRATION_ISSUE,
    C.CONTEXT_HANDLING_FAILURE: FailureType.CONTEXT_ISSUE,
    C.RESOURCE_ABUSE: FailureType.ORCHESTRATION_ISSUE,
    C.GOAL_DEVIATION: FailureType.ORCHESTRATION_ISSUE,
    C.TASK_ORCHESTRATION: FailureType.ORCHESTRATION_ISSUE,
    C.OTHER: FailureType.MODEL_LIMITATION,
}


def _key(name: str) -> str:
    """Spelling-insensitive form: letters only, each word without a plural s."""
    words = re.findall(r"[a-z]+", name.lower())
    return "".join(w[:-1] if len(w) > 3 and w.endswith("s") else w for w in words)


_BY_KEY = {_key(v): k for k, v in TRAIL_NAMES.items()} | {_key(k.value): k for k in ErrorCategory}


def trail_category(name: str) -> ErrorCategory | None:
    """The category a TRAIL label (or one of ours) names, matched loosely: case, hyphens, plurals
    and near-misspellings (`Instruction non complience`) are forgiven, as TRAIL's scorer does."""
    key = _key(name)
    if key in _BY_KEY:
        return _BY_KEY[key]
    close = difflib.get_close_matches(key, list(_BY_KEY), n=1, cutoff=0.8)
    return _BY_KEY[close[0]] if close else None


def trail_name(category: ErrorCategory) -> str:
    return TRAIL_NAMES.get(category, "Other")
