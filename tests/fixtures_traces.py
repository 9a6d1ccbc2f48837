"""Small traces built in code, for tests of the analysts and the renderer."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from refinery.core.models import DomainExpertExpectation, RunType, Trace, TraceRun

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def make_trace(n_runs: int = 3, trace_id: str = "t1", fail_at: int | None = 2) -> Trace:
    runs = []
    for i in range(1, n_runs + 1):
        runs.append(
            TraceRun(
                id=f"run-{i}",
                name="agent" if i == 1 else f"step_{i}",
                run_type=RunType.CHAIN if i == 1 else RunType.TOOL,
                inputs={"query": f"input {i}", "braces": "{not a placeholder}"},
                outputs=None if i == fail_at else {"result": f"output {i}"},
                start_time=T0 + timedelta(seconds=i),
                end_time=T0 + timedelta(seconds=i, milliseconds=250),
                error="KeyError: 'order_id'" if i == fail_at else None,
                parent_run_id=None if i == 1 else "run-1",
                trace_id=trace_id,
            )
        )
    return Trace(
        trace_id=trace_id, project_name="refunds", runs=runs, start_time=T0, end_time=T0 + timedelta(seconds=n_runs + 1)
    )


EXPECTATION = DomainExpertExpectation(
    description="The agent looks up the order and issues the refund.",
    expected_output="Refund issued for order 42",
    business_context="Refunds under $100 are automatic.",
    specific_issues=["order lookup failed"],
)
PROMPTS = {"agent.txt": "You are a refund agent. Be polite."}
EVALS = {"refund_eval.json": '{"checks": ["refund issued"]}'}
