"""A scripted OpenAI over aioresponses: vector stores, files and stage answers by schema name.

Every `/responses` body is recorded so tests can assert what each stage sent.
"""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

from aioresponses import CallbackResult

from refinery.analysis.stage_results import StagedAnalysisResult
from refinery.analysis.staged_schemas import STAGE_MODELS
from tests.helpers import BASE, json_sent, response_json

SAMPLES: dict[str, dict[str, Any]] = {
    "stage1": {
        "timeline": [
            {
                "sequence": 1,
                "run_id": "run-1",
                "run_name": "agent",
                "action": "plan the refund",
                "status": "not stated",
                "key_inputs": "user asks for refund",
                "key_outputs": "call lookup_order",
                "tool_calls": ["lookup_order"],
                "citations": [{"file": "t1_runs_001-003.md", "section_or_lines": "Run 001"}],
            },
            {
                "sequence": 2,
                "run_id": "run-2",
                "run_name": "lookup_order",
                "action": "tool call",
                "status": "error",
                "key_inputs": "order_id=None",
                "key_outputs": "",
                "tool_calls": [],
                "citations": [{"file": "t1_runs_001-003.md", "section_or_lines": "Run 002"}],
            },
        ],
        "events": [
            {
                "kind": "failure",
                "run_id": "run-2",
                "description": "order id missing",
                "citations": [{"file": "t1_runs_001-003.md", "section_or_lines": "Run 002"}],
            }
        ],
        "coverage": {"files_scanned": ["t1_runs_001-003.md"], "remaining": []},
        "evidence": [
            {"file": "t1_runs_001-003.md", "section_or_lines": "Run 002", "rationale": "KeyError on order_id"}
        ],
    },
    "stage2": {
        "expectations": [
            {
                "clause": "looks up the order",
                "status": "partial",
                "gap": "called without an id",
                "citations": [{"file": "t1_runs_001-003.md", "section_or_lines": "Run 002"}],
            },
            {"clause": "answers politely", "status": "met", "gap": "", "citations": []},
        ],
        "missing_context": ["order id from the conversation"],
        "incorrect_assumptions": ["the order id is in the session"],
        "suggested_focus_areas": ["tool argument extraction"],
        "coverage_updates": {"files_scanned": ["t1_expectations.md"], "remaining": []},
    },
    "stage3": {
        "causal_chains": [
            {
                "symptom": {
                    "description": "lookup_order failed",
                    "citations": [{"file": "t1_runs_001-003.md", "section_or_lines": "Run 002"}],
                },
                "mechanism": {
                    "description": "order_id passed as null",
                    "citations": [{"file": "t1_runs_001-003.md", "section_or_lines": "Run 002 inputs"}],
                },
                "cause": {
                    "description": "prompt never asks to extract the order id",
                    "citations": [{"file": "t1_prompt_agent.txt.md", "section_or_lines": "lines 1-5"}],
                },
                "confidence": "high",
            }
        ],
        "root_cause": "The system prompt does not instruct the agent to extract the order id.",
        "failure_type": "prompt_issue",
        "affected_components": ["agent prompt", "lookup_order"],
        "remediations": [
            {
                "action": "Add an extraction step for order ids",
                "target": "prompt",
                "rationale": "the id is in the user text",
                "effort": "low",
            }
        ],
        "confidence": "high",
        "detailed_analysis": "The agent planned correctly but passed null.",
        "responsible_agent": "agent",
        "decisive_step": {"run_id": "run-2", "reason": "lookup_order was called without an order id"},
        "errors": [
            {
                "run_id": "run-2",
                "category": "tool_selection_error",
                "evidence": "KeyError: 'order_id'",
                "impact": "high",
                "description": "The tool was called without the order id.",
            }
        ],
    },
    "stage4": {
        "summary": "The refund failed because the order id was never extracted.",
        "top_findings": [
            {
                "title": "Order id not extracted",
                "detail": "lookup_order got null",
                "severity": "high",
                "citations": [{"file": "t1_runs_001-003.md", "section_or_lines": "Run 002"}],
            }
        ],
        "actions_next": [
            {
                "priority": 1,
                "action": "Update the prompt to extract order ids",
                "owner": "prompt engineer",
                "rationale": "fixes the root cause",
            }
        ],
    },
}


def sample_result(**overrides: Any) -> StagedAnalysisResult:
    """A finished analysis made of the sample stage outputs (trace "t1"), fields overridable."""
    outputs = {s: STAGE_MODELS[s].model_validate(SAMPLES[s]) for s in SAMPLES}
    fields: dict[str, Any] = dict(
        trace_id="t1",
        store_id="vs_1",
        trace_analysis=outputs["stage1"],
        gap_analysis=outputs["stage2"],
        diagnosis=outputs["stage3"],
        synthesis=outputs["stage4"],
    )
    return StagedAnalysisResult(**{**fields, **overrides})


class FakeOpenAI:
    """Registers repeatable handlers on an `aioresponses` mock and records what was sent."""

    def __init__(self, mocked: Any, *, indexing_polls: int = 1, base: str = BASE) -> None:
        self.mocked = mocked
        self.bodies: list[dict[str, Any]] = []
        self.failures: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        self.pass_before_failing: dict[str, int] = {}
        self.answers: dict[str, list[dict[str, Any]]] = {}
        # Stage 1 groups are sent at once and may arrive in any order: answers and failures by group
        self.group_answers: dict[int, dict[str, Any]] = {}
        self.failing_groups: set[int] = set()
        self.store_metadata: dict[str, Any] = {}
        self.polls_left = indexing_polls
        self.deleted: list[str] = []
        self.batch: dict[str, Any] = {}
        self._ids = itertools.count(1)
        mocked.post(f"{base}/responses", callback=self._responses, repeat=True)
        mocked.post(f"{base}/vector_stores", callback=self._create_store, repeat=True)
        mocked.post(f"{base}/files", callback=self._upload, repeat=True)
        mocked.post(
            re.compile(rf"^{re.escape(base)}/vector_stores/[^/]+/file_batches$"), callback=self._batch, repeat=True
        )
        mocked.get(re.compile(rf"^{re.escape(base)}/vector_stores/[^/?]+$"), callback=self._get_store, repeat=True)
        mocked.delete(
            re.compile(rf"^{re.escape(base)}/(vector_stores|files)/[^/]+$"), callback=self._delete, repeat=True
        )

    def fail(self, stage: str, status: int = 500, times: int = 1, after: int = 0) -> None:
        """The stage's calls fail `times` times, once `after` of them have succeeded."""
        err = {
            "error": {"message": f"injected failure in {stage}", "type": "server_error", "param": None, "code": None}
        }
        self.failures.setdefault(stage, []).extend([(status, err)] * times)
        self.pass_before_failing[stage] = after

    def stage_of(self, body: dict[str, Any]) -> str:
        return body["text"]["format"]["name"].split("_")[0]

    def stages_called(self) -> list[str]:
        return [self.stage_of(b) for b in self.bodies]

    def _responses(self, url: Any, **kwargs: Any) -> CallbackResult:
        body = json_sent(kwargs)
        self.bodies.append(body)
        stage = self.stage_of(body)
        group = ((body.get("tools") or [{}])[0].get("filters") or {}).get("value")
        if stage == "stage1" and group in self.failing_groups:
            err = {"error": {"message": f"injected failure in group {group}", "type": "server_error"}}
            return CallbackResult(status=500, payload=err, headers={"x-should-retry": "false"})
        if stage == "stage1" and group in self.group_answers:
            return CallbackResult(payload=response_json(json.dumps(self.group_answers[group])))
        if self.failures.get(stage) and self.pass_before_failing.get(stage, 0) > 0:
            self.pass_before_failing[stage] -= 1
        elif self.failures.get(stage):
            status, err = self.failures[stage].pop(0)
            return CallbackResult(status=status, payload=err, headers={"x-should-retry": "false"})
        queued = self.answers.get(stage)
        answer = queued.pop(0) if queued else SAMPLES[stage]
        extra = []
        if body.get("tools"):
            extra.append(
                {"id": "fs_1", "type": "file_search_call", "status": "completed", "queries": ["error"], "results": []}
            )
        return CallbackResult(payload=response_json(json.dumps(answer), extra_items=extra))

    def _create_store(self, url: Any, **kwargs: Any) -> CallbackResult:
        self.store_metadata = kwargs["json"].get("metadata") or {}
        return CallbackResult(
            payload={"id": "vs_test", "object": "vector_store", "status": "completed", "file_counts": {}}
        )

    def _upload(self, url: Any, **kwargs: Any) -> CallbackResult:
        return CallbackResult(payload={"id": f"file-{next(self._ids)}", "object": "file", "purpose": "assistants"})

    def _batch(self, url: Any, **kwargs: Any) -> CallbackResult:
        self.batch = kwargs["json"]
        return CallbackResult(payload={"id": "vsfb_1", "object": "vector_store.files_batch", "status": "in_progress"})

    def _get_store(self, url: Any, **kwargs: Any) -> CallbackResult:
        n = len(self.batch.get("files") or self.batch.get("file_ids") or [])
        if self.polls_left > 0:
            self.polls_left -= 1
            counts = {"in_progress": n, "completed": 0, "failed": 0, "cancelled": 0, "total": n}
        else:
            counts = {"in_progress": 0, "completed": n, "failed": 0, "cancelled": 0, "total": n}
        return CallbackResult(
            payload={"id": "vs_test", "object": "vector_store", "file_counts": counts, "metadata": self.store_metadata}
        )

    def _delete(self, url: Any, **kwargs: Any) -> CallbackResult:
        self.deleted.append(str(url).rsplit("/", 1)[-1])
        return CallbackResult(payload={"deleted": True})
