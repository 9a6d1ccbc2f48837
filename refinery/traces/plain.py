"""Plain JSON chat logs and step lists → `Trace`.

A multi-agent run exported as messages (`role` / `name` / `content`) or as steps (`name`,
`input`, `output`, `error`) becomes one run per entry, in order, so it can be analysed like any
other trace. Accepts a bare list, or an object holding the list under `history`, `messages` or
`steps` with, optionally, the task (`question` / `task` / `input`) and a per-agent
`system_prompt` map — the shape of Who&When logs and of most hand-rolled multi-agent loggers.

Why the numbering and names are kept exactly as the source has them: a user (or a benchmark
label) who says "step 12, the Orchestrator" means `history[12]` and that spelling. So entry `i`
is step `i` (0-based, the list index), its citable run id is `step-<i>` unless the entry has an
`id` of its own, and its agent is `name` if present, else `role`, as written.

Fields that hold a benchmark's answer key (`mistake_agent`, `mistake_step`, `ground_truth`, …)
are kept apart in `trace.metadata["labels"]` and never rendered, so an analysis of a labelled
log cannot read its own answer.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from functools import partial
from json.encoder import c_make_encoder, encode_basestring_ascii  # type: ignore[attr-defined]
from typing import Any

from refinery.core.models import LazyRuns, RunType, Trace, TraceRun, fact_of, run_from_checked, run_from_values
from refinery.errors import TraceFormatError
from refinery.traces.common import as_dict, parse_time, span_bounds, time_bounds
from refinery.traces.json_stream import LazyArray, ReadShape, is_array
from refinery.traces.transcript import has_tool_calls, link_tool_calls

ROLE_TYPES = {
    "assistant": RunType.LLM,
    "ai": RunType.LLM,
    "tool": RunType.TOOL,
    "function": RunType.TOOL,
    "system": RunType.PROMPT,
    "user": RunType.PROMPT,
    "human": RunType.PROMPT,
}
LIST_KEYS = ("history", "messages", "steps")
TASK_KEYS = ("question", "task", "input")
LABEL_KEYS = frozenset(
    {
        "mistake_agent",
        "mistake_step",
        "mistake_reason",
        "mistake_type",
        "ground_truth",
        "is_correct",
        "is_corrected",
        "labels",
    }
)
_STEP_FIELDS = (
    "role",
    "name",
    "content",
    "input",
    "output",
    "error",
    "id",
    "timestamp",
    "tool_calls",
    "agent",
    "start_time",
    "end_time",
)


def _items(data: Any, source: str | None) -> tuple[Sequence[Any], str, dict[str, Any]]:
    """The entries, the key they were under (for error messages), and the wrapper's other fields."""
    if is_array(data):
        return data, "messages", {}
    if isinstance(data, dict):
        for key in LIST_KEYS:
            if is_array(data.get(key)):
                return data[key], key, {k: v for k, v in data.items() if k != key}
    raise TraceFormatError(
        "expected a list of messages/steps, or an object with a 'history', 'messages' or 'steps' list", source=source
    )


def _task(head: dict[str, Any]) -> str | None:
    for key in TASK_KEYS:
        value = head.get(key)
        if isinstance(value, str) and value.strip():
            return value
        if value not in (None, "", [], {}):
            return json.dumps(value, ensure_ascii=False, default=str)
    return None


def _system_prompts(head: dict[str, Any], source: str | None) -> dict[str, str]:
    raw = head.get("system_prompt", head.get("system_prompts"))
    if raw is None:
        return {}
    if isinstance(raw, str):
        return {"(all agents)": raw}
    if isinstance(raw, dict):
        return {
            str(agent): prompt if isinstance(prompt, str) else json.dumps(prompt, ensure_ascii=False, default=str)
            for agent, prompt in raw.items()
        }
    raise TraceFormatError("expected a map of agent name → prompt text", source=source, field="system_prompt")


def _run_type(role: str, name: Any, agent: Any) -> RunType:
    """A named speaker in the user seat is another agent (AutoGen-style group chats), not a prompt."""
    if role in ("user", "human") and name and str(name).lower() not in ("user", "human"):
        return RunType.AGENT
    if role in ROLE_TYPES:
        return ROLE_TYPES[role]
    return RunType.AGENT if (agent or name or role) else RunType.CHAIN


_STEP_KEYS = frozenset({"role", "content", "name", "input", "output"})  # an entry with none of them is no step
_KEPT_APART = frozenset(_STEP_FIELDS)  # what the run holds in its own fields, not among its metadata


def _checked_entry(i: int, item: Any, list_key: str, source: str | None) -> None:
    """A bad entry (no object, or none of the keys a step has) gets an error naming it."""
    if not isinstance(item, dict):
        raise TraceFormatError("expected an object with role/name/content", source=source, field=f"{list_key}[{i}]")
    if _STEP_KEYS.isdisjoint(item):
        raise TraceFormatError(
            "expected 'role', 'name', 'content', 'input' or 'output'", source=source, field=f"{list_key}[{i}]"
        )


def _times(item: dict[str, Any], i: int, list_key: str, source: str | None) -> tuple[datetime | None, datetime | None]:
    start = item.get("timestamp") or item.get("start_time")
    end = item.get("end_time")
    return (
        None if start is None else parse_time(start, source=source, field=f"{list_key}[{i}].timestamp"),
        None if end is None else parse_time(end, source=source, field=f"{list_key}[{i}].end_time"),
    )


def _error(item: dict[str, Any]) -> str | None:
    error = item.get("error")
    if isinstance(error, dict):  # `{type, message}` (Inspect, many SDKs)
        error = error.get("message") or error.get("type") or json.dumps(error, ensure_ascii=False, default=str)
    return str(error) if error else None


def _own_dict(value: Any, key: str) -> dict[str, Any] | None:
    """`as_dict`, and a dict of the entry's own copied: the run's is the run's to change."""
    if value is None:
        return None
    value = as_dict(value, key)
    return dict(value) if value is not None else None


def _step_run(
    i: int, item: Any, *, list_key: str, trace_id: str, source: str | None, checked: bool = False
) -> TraceRun:
    """Entry `i` of the log as a run; a bad entry gets an error naming it. `checked`: entries read
    from the file (text keys only), made with `run_from_checked`."""
    if type(item) is dict and item and _SPOKEN.issuperset(item):
        if checked:
            return _spoken_run(i, item, trace_id)
        fields = _spoken_fields(i, item, trace_id)
    else:
        fields = _step_fields(i, item, list_key, trace_id, source)
    return run_from_checked(fields) if checked else TraceRun(**fields)


def _checked_runs(list_key: str, trace_id: str, source: str | None) -> Callable[[int, Any], TraceRun]:
    """`_step_run(…, checked=True)` as `LazyRuns` calls it on every pass. A spoken step (text for its
    role and name) is made here, with no call of its own but the run's making: `run_from_checked(
    _spoken_fields(…))` (a differential test holds them equal), its role and name read once for every
    step that has the same (`_Speakers`), its fields written out in the model's order. Why inline:
    each call was a sixth of the 6 µs a step's run cost, on every pass."""
    make, given, speakers, spoken = run_from_values, _SPOKEN_GIVEN, _Speakers(), _SPOKEN

    def convert(i: int, item: Any) -> TraceRun:
        if type(item) is dict and item and spoken.issuperset(item):
            role, name = item.get("role"), item.get("name")
            if not ((role is None or type(role) is str) and (name is None or type(name) is str)):
                return run_from_checked(_spoken_fields(i, item, trace_id))
            speaker, run_type, role_as_written, prompt, _ = speakers[role, name]
            content = item.get("content")
            inputs: dict[str, Any] = {}
            outputs = None
            if content is not None:
                if prompt:
                    inputs["content"] = content
                else:
                    outputs = {"content": content}
            return make(
                {
                    "id": f"step-{i}",
                    "name": speaker or f"step {i}",
                    "run_type": run_type,
                    "inputs": inputs,
                    "outputs": outputs,
                    "start_time": None,
                    "end_time": None,
                    "error": None,
                    "parent_run_id": None,
                    "trace_id": trace_id,
                    "dotted_order": None,
                    "metadata": {"role": role_as_written} if role_as_written else {},
                    "step": i,
                    "status": None,
                },
                set(given),
            )
        return _step_run(i, item, list_key=list_key, trace_id=trace_id, source=source, checked=True)

    return convert


def _spoken_run(i: int, item: dict[str, Any], trace_id: str) -> TraceRun:
    """A spoken step's run as a pass makes it (`_checked_runs`)."""
    return _checked_runs("", trace_id, None)(i, item)


def _spoken_as(role_value: str | None, name: str | None) -> tuple[str, RunType, str, bool, int]:
    """What a spoken step's role and name make of it (`_spoken_fields`' reading of them): its
    speaker ('' when neither names one: its number does), its type, its role as written, whether
    its content is the prompt (an input) rather than what it said, and its fact."""
    role_as_written = role_value or ""
    role = role_as_written.lower()
    run_type = _run_type(role, name, None)
    return (
        name or role_as_written,
        run_type,
        role_as_written,
        role in _PROMPT_ROLES and not name,
        fact_of(run_type, False),
    )


_Speaker = tuple[str, RunType, str, bool, int]


class _Speakers(dict[tuple[str | None, str | None], _Speaker]):
    """`_spoken_as` of each role and name (text or None) seen, worked out once: `speakers[role, name]`.
    Why: a big log repeats a few speakers thousands of times, and a dict's look-up of the pair is a
    third of what a typed `lru_cache` cost a step. One for each trace's runs and one for each load, not
    one for the process (threads reading one trace at once may both work out a speaker: the same
    answer); forgotten when it holds `MOST` (a log whose every step names its own speaker)."""

    MOST = 4096

    def __missing__(self, key: tuple[str | None, str | None]) -> _Speaker:
        if len(self) >= self.MOST:
            self.clear()
        found = self[key] = _spoken_as(*key)
        return found


# the fields `_spoken_fields` gives (the others take their defaults)
_SPOKEN_GIVEN = frozenset(
    ("id", "name", "run_type", "inputs", "outputs", "start_time", "end_time", "error", "trace_id", "step", "metadata")
)


_SPOKEN = frozenset({"role", "name", "content"})  # a step that only says who spoke and what (Who&When's)
_PROMPT_ROLES = ("user", "human", "system")


def _spoken_fields(i: int, item: dict[str, Any], trace_id: str) -> dict[str, Any]:
    """`_step_fields` of a step with no key but `role`, `name` and `content` (a differential test
    holds them equal): no times, error, id, own input or output, or metadata of its own to read.
    Why apart: most big logs are made of nothing else, and their runs are made on every pass."""
    role_value, name, content = item.get("role"), item.get("name"), item.get("content")
    role_as_written = str(role_value) if role_value else ""
    role = role_as_written.lower()
    inputs: dict[str, Any] = {}
    outputs = None
    if content is not None:
        if role in _PROMPT_ROLES and not name:
            inputs["content"] = content
        else:
            outputs = {"content": content}
    return {
        "id": f"step-{i}",
        "name": str(name or role_as_written or f"step {i}"),
        "run_type": _run_type(role, name, None),
        "inputs": inputs,
        "outputs": outputs,
        "start_time": None,
        "end_time": None,
        "error": None,
        "trace_id": trace_id,
        "step": i,
        "metadata": {"role": role_as_written} if role_as_written else {},
    }


def _step_fields(i: int, item: Any, list_key: str, trace_id: str, source: str | None) -> dict[str, Any]:
    """The fields of entry `i`'s run, any entry (a bad one gets an error naming it)."""
    _checked_entry(i, item, list_key, source)
    get = item.get
    role_as_written = str(get("role") or "")
    role = role_as_written.lower()
    content = get("content")
    inputs = _own_dict(get("input"), "input") or {}
    outputs = _own_dict(get("output"), "output")
    if content is not None:
        if role in ("user", "human", "system") and not get("name"):
            inputs.setdefault("content", content)
        else:
            outputs = {**(outputs or {}), "content": content}
    if get("tool_calls"):
        outputs = {**(outputs or {}), "tool_calls": item["tool_calls"]}
    step_meta = {} if _KEPT_APART.issuperset(item) else {k: v for k, v in item.items() if k not in _KEPT_APART}
    if role_as_written:
        step_meta["role"] = role_as_written
    start, end = _times(item, i, list_key, source)
    return {
        "id": str(get("id") or f"step-{i}"),
        "name": str(get("name") or get("agent") or role_as_written or f"step {i}"),
        "run_type": _run_type(role, get("name"), get("agent")),
        "inputs": inputs,
        "outputs": outputs,
        "start_time": start,
        "end_time": end,
        "error": _error(item),
        "trace_id": trace_id,
        "step": i,
        "metadata": step_meta,
    }


def _step_skeleton(
    i: int, item: Any, list_key: str, source: str | None
) -> tuple[datetime | None, datetime | None, int]:
    """What the load needs of entry `i` without making its run: its times and its `LazyRuns` fact
    (type, failed), after the same checks `_step_run` makes, so a bad entry fails here, named."""
    if type(item) is dict and item and _SPOKEN.issuperset(item):  # no times, no error: checked by its keys
        role_value, name = item.get("role"), item.get("name")
        return None, None, fact_of(_run_type(str(role_value).lower() if role_value else "", name, None), False)
    _checked_entry(i, item, list_key, source)
    start, end = _times(item, i, list_key, source)
    run_type = _run_type(str(item.get("role") or "").lower(), item.get("name"), item.get("agent"))
    return start, end, fact_of(run_type, _error(item) is not None)


class _Digest:
    """A stable id for a log that names none: a hash of its content, one entry at a time (one
    JSON dump of a 100 MB log would cost another 100 MB).

    Each entry is dumped as `json.dumps(entry, sort_keys=True, default=str)` dumps it (the id names
    folders and must never change), by the C encoder that call builds, made once here rather than
    once an entry (half the cost of a dump was making the encoder).
    """

    def __init__(self, head: dict[str, Any]) -> None:
        self._hash = hashlib.sha256(json.dumps(head, sort_keys=True, default=str).encode())
        self._dump = _entry_dumper()

    def add(self, item: Any) -> None:
        self._hash.update(self.dump(item).encode())

    def add_dumps(self, dumps: list[str]) -> None:
        """`add` of the entries whose `dump`s these are, in order: one update for a block of them (the
        hash of the joined text is the hash of its parts in turn), not one an entry."""
        self._hash.update("".join(dumps).encode())

    def dump(self, item: Any) -> str:
        """What `add` hashes of `item`. A step of `role`, `name` and `content` alone, all three text (most
        big logs' every step), has its dump written out (sorted keys, `json.dumps`' separators and
        escapes; a differential test holds it to `json.dumps`), not made by the encoder's walk."""
        if type(item) is dict and len(item) == 3:
            content, name, role = item.get("content"), item.get("name"), item.get("role")
            if type(content) is str and type(name) is str and type(role) is str:
                text = encode_basestring_ascii  # (what `json.dumps` escapes a string with)
                return f'{{"content": {text(content)}, "name": {text(name)}, "role": {text(role)}}}'
        return self._dump(item)

    def hexdigest(self) -> str:
        return self._hash.hexdigest()[:12]


def _entry_dumper() -> Callable[[Any], str]:
    """`json.dumps(value, sort_keys=True, default=str)`, by that call's own C encoder made once; the
    call itself where this Python's encoder does not give the same text on a sample."""
    enc = json.JSONEncoder(sort_keys=True, default=str)

    def dumps(value: Any) -> str:
        return "".join(encoder(value, 0))

    try:
        encoder = c_make_encoder(  # what `JSONEncoder.iterencode` builds for each call
            {},
            enc.default,
            encode_basestring_ascii,
            enc.indent,
            enc.key_separator,
            enc.item_separator,
            enc.sort_keys,
            enc.skipkeys,
            enc.allow_nan,
        )
        sample = {"b": [1.5, -0.0, 10**20, None, True, "é\n\u2028"], "a": {"z": {}, "y": []}, "c": float("inf")}
        if dumps(sample) == json.dumps(sample, sort_keys=True, default=str):
            return lambda value: encode_basestring_ascii(value) if isinstance(value, str) else dumps(value)
    except TypeError:  # no C encoder, or another signature
        pass
    return partial(json.dumps, sort_keys=True, default=str)


def _digest(items: Iterable[Any], head: dict[str, Any]) -> str:
    digest = _Digest(head)
    for item in items:
        digest.add(item)
    return digest.hexdigest()


def _lazy_runs(
    items: LazyArray, list_key: str, head: dict[str, Any], named: str, source: str | None
) -> tuple[LazyRuns, str, datetime | None, datetime | None]:
    """A big log's runs, left in the file, from one pass over its entries: each checked (a bad one
    fails the load here, named), its times and its fact noted, and hashed for the trace id when the
    log names none — no run made (they are made when read)."""
    watch = next((w for w in items.watched if isinstance(w, _StepWatch)), None)
    items.watched = ()  # what the watches took is the load's now: not held as long as the trace
    if watch is not None and watch.fits(items, list_key, head, named):
        trace_id = named or f"chat-{watch.digest.hexdigest() if watch.digest is not None else ''}"
        convert = _checked_runs(list_key, trace_id, source)
        return LazyRuns(items, convert, bytes(watch.facts)), trace_id, watch.first, watch.last
    digest = None if named else _Digest(head)
    facts = bytearray()

    def times() -> Iterator[tuple[datetime | None, datetime | None]]:
        for i, item in enumerate(items):
            if digest is not None:
                digest.add(item)
            start, end, fact = _step_skeleton(i, item, list_key, source)
            facts.append(fact)
            yield start, end

    first, last = time_bounds(times())
    trace_id = named or f"chat-{digest.hexdigest() if digest is not None else ''}"
    convert = _checked_runs(list_key, trace_id, source)
    return LazyRuns(items, convert, bytes(facts)), trace_id, first, last


class _StepWatch:
    """What the load needs of a big log's steps — each one's times and fact, and the id's hash
    when the fields read before the steps name no id — taken while the reader's own scan holds
    each step parsed (`ReadShape.watches`), so the load need not parse the file once more. A bad
    step raises here: the reader drops the watch and the load's own pass names the step."""

    def __init__(self, key: str, head: Mapping[str, Any], source: str) -> None:
        self.key, self.head, self.source = key, head, source
        self.digest = None if _named(head) else _Digest(dict(head))
        self.facts = bytearray()
        self._speakers = _Speakers()
        self.first: datetime | None = None
        self.last: datetime | None = None

    def add_all(self, items: list[Any]) -> None:
        """`add` each of a block of steps, their dumps hashed in one update; a spoken one with text for
        its role and name (no times, no error: its fact is its speaker's) without a call of its own."""
        digest, facts, speakers, spoken = self.digest, self.facts, self._speakers, _SPOKEN
        dumps: list[str] = []
        for item in items:
            if digest is not None:
                dumps.append(digest.dump(item))
            if type(item) is dict and item and spoken.issuperset(item):
                role, name = item.get("role"), item.get("name")
                if (role is None or type(role) is str) and (name is None or type(name) is str):
                    facts.append(speakers[role, name][4])
                    continue
            self._see(item)
        if digest is not None:
            digest.add_dumps(dumps)

    def add(self, item: Any) -> None:
        if self.digest is not None:
            self.digest.add(item)
        self._see(item)

    def _see(self, item: Any) -> None:
        """A step's skeleton: its fact and its times (a bad step raises here, named)."""
        start, end, fact = _step_skeleton(len(self.facts), item, self.key, self.source)
        self.facts.append(fact)
        if start and (self.first is None or start < self.first):  # `time_bounds`, a step at a time
            self.first = start
        if end and (self.last is None or end > self.last):
            self.last = end

    def fits(self, items: LazyArray, list_key: str, head: dict[str, Any], named: str) -> bool:
        """Whether it saw these steps and, for an id of their hash, the rest of the object whole:
        no field after the steps (the id hashes every other field first)."""
        if self.key != list_key or len(self.facts) != len(items):
            return False
        return bool(named) or (
            self.digest is not None and head.keys() == self.head.keys() and all(head[k] is self.head[k] for k in head)
        )


def _watch(key: str, head: Mapping[str, Any], source: str) -> _StepWatch:
    return _StepWatch(key, head, source)


# a big log's steps stay in the file until read; what the load needs of them is taken as they are first read
READ_SHAPE = ReadShape(entries=frozenset(LIST_KEYS), watches=tuple((key, _watch) for key in LIST_KEYS))


def _named(head: Mapping[str, Any]) -> str:
    """The id the log names for itself, if any."""
    return str(head.get("trace_id") or head.get("id") or head.get("question_ID") or "").strip("'\" ")


def load_plain(data: Any, source: str | None = None) -> Trace:
    items, list_key, head = _items(data, source)
    named = _named(head)
    runs: Sequence[TraceRun]
    if isinstance(items, LazyArray):
        # Entries left in the file (a big log) stay there: its runs are made each time they are
        # read (`LazyRuns`), at a few bytes a run instead of about 2 KB.
        runs, trace_id, start, end = _lazy_runs(items, list_key, head, named, source)
    else:
        trace_id = named or f"chat-{_digest(items, head)}"
        convert = partial(_step_run, list_key=list_key, trace_id=trace_id, source=source)
        runs = [convert(i, item) for i, item in enumerate(items)]
        if has_tool_calls(items):
            runs = link_tool_calls(runs, items)  # each tool call a run, with its result, under its caller
        start, end = span_bounds(runs)
    metadata: dict[str, Any] = {"format": "plain"}
    task = _task(head)
    if task:
        metadata["task"] = task
    prompts = _system_prompts(head, source)
    if prompts:
        metadata["system_prompts"] = prompts
    labels = {k: v for k, v in head.items() if k in LABEL_KEYS}
    if labels:
        metadata["labels"] = labels
    skip = {*TASK_KEYS, "system_prompt", "system_prompts", "trace_id", "id", "project", *LABEL_KEYS}
    metadata.update({k: v for k, v in head.items() if k not in skip and k not in metadata})
    return Trace(
        trace_id=trace_id,
        project_name=str(head.get("project") or ""),
        runs=runs,
        start_time=start,
        end_time=end,
        metadata=metadata,
    )
