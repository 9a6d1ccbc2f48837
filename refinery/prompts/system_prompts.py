"""The prompts, versioned, and a registry to get one by name and version.

The texts marked "preserved" are the user's own (the refactor plan's "Prompts to preserve") and
stay word for word. A prompt is filled by replacing its exact `{placeholder}` tokens — never with
`str.format`, because the values are JSON full of braces. Every artifact records the name and
version of the prompts that produced it, so a change of wording is traceable in results.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from refinery.errors import PromptError

# --- preserved: system prompt (all stages) --------------------------------------------------
FAILURE_ANALYST_SYSTEM_PROMPT_V3 = """You are an impartial agent-behavior analyst.

Use the file_search tool to retrieve only what you need in bounded passes:
- max_num_results per pass: 8
- Stop after 6 passes OR if a pass yields no new sections
- Track coverage: coverage.files_scanned[], coverage.remaining[]

Rules:
- Cite evidence with {file, section_or_lines} when possible (rough is OK for POC).
- Output VALID JSON only that matches the provided schema. No prose outside JSON.
- If coverage is incomplete when you stop, state it explicitly in the JSON."""

# --- preserved: stage 1 ---------------------------------------------------------------------
STAGE1_TRACE_ANALYSIS_PROMPT_V1 = """Task: Produce an evidence-backed timeline of the agent execution.

Retrieval protocol:
1) Query for sections containing "run", "tool", "input", "output", "error", "exception".
2) Iterate passes (max 6). In each pass, fetch at most 8 chunks. Avoid repeating already-seen sections.
3) Build:
   - timeline[]: ordered runs with key inputs/outputs and tool calls
   - events[]: failures/retries/anomalies
   - coverage: { files_scanned[], remaining[] }
   - evidence[]: { file, section_or_lines, rationale }

Return JSON only per schema. If you hit the stop condition with remaining sections, include them in coverage.remaining."""

# --- preserved: stage 2 ---------------------------------------------------------------------
STAGE2_GAP_ANALYSIS_PROMPT_V1 = """Task: Compare actual behavior vs expectations/evals using the Stage 1 JSON and eval files.

Retrieval protocol:
- Retrieve only spans cited in Stage 1 or matching expectation clauses.
- For each clause: status = {met, partial, missing} with at least one citation when not "met".
- Update coverage if you fetched new sections.

Return JSON only per schema.

Stage 1 Results:
{stage1_json}"""

# --- preserved: stage 3 ---------------------------------------------------------------------
STAGE3_DIAGNOSIS_PROMPT_V1 = """Task: Determine root causes with confidence.

Protocol:
- Re-retrieve only the specific spans cited in Stage 1/2 for verification.
- Build causal chains: {symptom -> mechanism -> cause} each with citations.
- Provide remediations and an overall confidence.

Return JSON only per schema.

Stage 1 Results:
{stage1_json}

Stage 2 Results:
{stage2_json}"""

# --- preserved: stage 4 ---------------------------------------------------------------------
STAGE4_SYNTHESIS_PROMPT_V1 = """Synthesize an executive summary and prioritized recommendations from prior JSON artifacts. No new retrieval unless needed. Return summary, top_findings[], actions_next[].

Stage 1 Results:
{stage1_json}

Stage 2 Results:
{stage2_json}

Stage 3 Results:
{stage3_json}"""

# --- refinery's own (not from the plan) -----------------------------------------------------
SIMPLE_ANALYST_SYSTEM_PROMPT_V1 = """You are an impartial agent-behavior analyst.

The agent's trace and files are given inline in the user message; there is no retrieval tool.
Rules:
- Cite evidence with {file, section_or_lines}, using the file names and run ids shown inline.
- Output VALID JSON only that matches the provided schema. No prose outside JSON.
- If the inline trace was trimmed, say so in the JSON."""

STAGE1_GROUP_NOTE_V1 = """Scope: this pass covers trace runs {first_run} to {last_run} (group {group} of {groups}); retrieval is restricted to this group's files."""


@dataclass(frozen=True)
class PromptTemplate:
    """A named, versioned prompt text with `{placeholder}` slots."""

    name: str
    version: str
    text: str

    @property
    def placeholders(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(re.findall(r"\{([a-z][a-z0-9_]*)\}", self.text)))

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def fill(self, **values: str) -> str:
        """The text with each `{name}` slot replaced by its value, braces in values left alone.

        Every slot must be given and no unknown name is accepted, so a renamed slot fails loudly
        instead of sending a prompt with a literal `{stage1_json}` in it.
        """
        wanted = set(self.placeholders)
        missing = wanted - set(values)
        unknown = set(values) - wanted
        if missing or unknown:
            raise PromptError(f"prompt {self.ref}: missing values {sorted(missing)}, unknown values {sorted(unknown)}")
        pattern = re.compile(r"\{(" + "|".join(map(re.escape, sorted(wanted))) + r")\}") if wanted else None
        if pattern is None:
            return self.text
        return pattern.sub(lambda m: values[m.group(1)], self.text)


# Each template's name and version are recorded with every stage artifact (`prompt_version`), so
# an analysis says which words produced it; a changed text gets a new version here.
SYSTEM = PromptTemplate("FAILURE_ANALYST_SYSTEM_PROMPT", "v3", FAILURE_ANALYST_SYSTEM_PROMPT_V3)
STAGE1 = PromptTemplate("STAGE1_TRACE_ANALYSIS_PROMPT", "v1", STAGE1_TRACE_ANALYSIS_PROMPT_V1)
STAGE2 = PromptTemplate("STAGE2_GAP_ANALYSIS_PROMPT", "v1", STAGE2_GAP_ANALYSIS_PROMPT_V1)
STAGE3 = PromptTemplate("STAGE3_DIAGNOSIS_PROMPT", "v1", STAGE3_DIAGNOSIS_PROMPT_V1)
STAGE4 = PromptTemplate("STAGE4_SYNTHESIS_PROMPT", "v1", STAGE4_SYNTHESIS_PROMPT_V1)
SIMPLE_SYSTEM = PromptTemplate("SIMPLE_ANALYST_SYSTEM_PROMPT", "v1", SIMPLE_ANALYST_SYSTEM_PROMPT_V1)
STAGE1_GROUP_NOTE = PromptTemplate("STAGE1_GROUP_NOTE", "v1", STAGE1_GROUP_NOTE_V1)

STAGE3_LOCALISATION_NOTE_V1 = """Also localise the failure as data, using only what the retrieved files show:
- responsible_agent: the agent whose action made the run fail, spelled exactly as the trace writes it (a step's agent, or the agent/span name); "unknown" if the files do not show it.
- decisive_step: the run_id (exactly as in a [run_id: ...] heading, e.g. a span id or step-12) of the run where the failure became inevitable, and a one-line reason.
- errors: every faulty run you found, each with its run_id, a category from the enum, evidence quoted word for word from that run's text (a short exact excerpt, no paraphrase), its impact (high, medium or low) and a one-sentence description.
Cite only run ids that appear in the files; quote only text that appears in them."""

STAGE3_LOCALISATION_NOTE = PromptTemplate("STAGE3_LOCALISATION_NOTE", "v1", STAGE3_LOCALISATION_NOTE_V1)

STAGE1_STATUS_NOTE_V1 = """Each timeline entry's status is what the trace states for that run (the "- status:" line under its heading): ok, error, or "not stated" when the trace does not say (chat and step logs never do). Do not call a run ok the trace does not call ok; use partial only for a run whose own text shows it did part of its job. Put what you conclude yourself in action and events, not in status."""

STAGE1_STATUS_NOTE = PromptTemplate("STAGE1_STATUS_NOTE", "v1", STAGE1_STATUS_NOTE_V1)

STAGE1_INLINE_NOTE_V1 = """Reading: the run files of this pass are given in full below, under "Trace files (inline)", each starting with its file name. Read every run in them and put every run on the timeline; cite those files by name. file_search covers only what is not inline: the index (the task, each agent's system prompt, the tool definitions, the table of all runs), the agent's prompts, evals and expectations, and the runs of other passes. Search it when a run refers to something you cannot see here."""

STAGE1_INLINE_NOTE = PromptTemplate("STAGE1_INLINE_NOTE", "v1", STAGE1_INLINE_NOTE_V1)

STAGE1_WHOLE_NOTE_V1 = """Reading: the whole trace is given below under "Trace files (inline)", each file starting with its name: the index (the task, each agent's system prompt, the tool definitions, the table of all runs), every run file, and the agent's prompts, evals and expectations if any. This pass has no file_search tool: there is nothing else to retrieve. Read every run and put every run on the timeline; cite those files by name."""

STAGE1_WHOLE_NOTE = PromptTemplate("STAGE1_WHOLE_NOTE", "v1", STAGE1_WHOLE_NOTE_V1)
