"""What a run would send, built offline: the request body of every stage call, in order.

Why here and not in the CLI: it is the analyst's own request building (the same `Stage` table,
prompt filling and `build_request`), run with placeholders where prior-stage JSON will go, so
`refinery plan` shows exactly the bodies a run sends and cannot drift from them.
"""

from __future__ import annotations

from typing import Any

from refinery.agents.analysis_run import group_filter, plan_groups
from refinery.agents.staged_failure_analyst import PLANNED_STORE, StagedFailureAnalyst
from refinery.agents.stages import STAGE_BY_KEY, GroupNote, stage_user_text
from refinery.core.models import DomainExpertExpectation, Trace


def planned_requests(
    analyst: StagedFailureAnalyst, trace: Trace, files: list[tuple[str, str]], expectation: DomainExpertExpectation
) -> list[tuple[str, dict[str, Any]]]:
    """(call name, body) for every `/responses` call of a run, prior-stage JSON as placeholders."""
    prior = {f"stage{n}": f"<stage {n} JSON>" for n in (1, 2, 3)}
    groups = plan_groups(files, len(trace.runs), analyst.render_options.runs_per_file, analyst.files_per_group, analyst.group_tokens)
    stage1 = STAGE_BY_KEY["stage1"]
    bodies: list[tuple[str, dict[str, Any]]] = []
    if len(groups) > 1:
        for g in groups:
            text = stage_user_text(stage1, group=GroupNote(g.number, len(groups), g.first_run, g.last_run))
            bodies.append((f"stage1 (group {g.number}/{len(groups)})", analyst.build_stage_body("stage1", text, filters=group_filter(g), store_id=PLANNED_STORE)))
    else:
        bodies.append(("stage1", analyst.build_stage_body("stage1", stage_user_text(stage1), store_id=PLANNED_STORE)))
    bodies.append(("stage2", analyst.build_stage_body("stage2", stage_user_text(STAGE_BY_KEY["stage2"], prior, expectation_text=analyst.expectation_text(expectation)), store_id=PLANNED_STORE)))
    for key in ("stage3", "stage4"):
        bodies.append((key, analyst.build_stage_body(key, stage_user_text(STAGE_BY_KEY[key], prior), store_id=PLANNED_STORE)))
    return bodies
