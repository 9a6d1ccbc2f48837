"""Traces fetched from where they live: `langsmith:<run-or-trace-id>`, `langfuse:<trace-id>`,
`phoenix:<trace-id>` (or `phoenix:<project>/<trace-id>`).

Why: the failed run is in LangSmith, Langfuse or Phoenix, and exporting it to a file is a chore of
its own (LangSmith's UI exports one run at a time; Phoenix's needs a script). A reference is
accepted wherever a trace path is; the trace is fetched through the platform's public REST API with
its own credentials, written as a JSON file the file loaders read (so it becomes the same `Trace`),
redacted, and kept beside the artifacts (`trace.json`) so a rerun resumes without fetching.

- LangSmith: `GET {endpoint}/api/v1/runs/{id}` (a run's or a trace's id) for its `trace_id`, then
  `POST {endpoint}/api/v1/runs/query` `{"trace": id}` page by page (`cursors.next`), with
  `x-api-key`; `LANGSMITH_API_KEY` / `LANGSMITH_ENDPOINT` (`LANGCHAIN_*`, their older names).
- Langfuse: `GET {host}/api/public/traces/{id}` (the trace with its observations), Basic auth with
  `LANGFUSE_PUBLIC_KEY` / `LANGFUSE_SECRET_KEY`; `LANGFUSE_HOST` or `LANGFUSE_BASE_URL`.
- Phoenix: `GET {base}/v1/projects/{project}/spans?trace_id=…` page by page (`next_cursor`), the
  project named in the reference, else `PHOENIX_PROJECT` / `PHOENIX_PROJECT_NAME`, else each of
  `GET /v1/projects` in turn; `PHOENIX_COLLECTOR_ENDPOINT` (a trailing `/v1/traces` dropped) or
  `PHOENIX_BASE_URL` (default `http://localhost:6006`); `PHOENIX_API_KEY` as a bearer token when set.

A 401 names the variable to check, a 404 the id and the endpoint; 429s, 408/409/5xx and lost
connections are retried by the transport's own rules (`integrations.retry`, `SOURCE_RETRY`). No
credential is logged, written or put in an error's text.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from refinery.core.artifacts import read_json, write_json_atomic
from refinery.core.models import Trace
from refinery.errors import (
    APIConnectionError,
    APIStatusError,
    ConfigurationError,
    RateLimitError,
    RefineryError,
    UserInputError,
)
from refinery.traces import load_trace
from refinery.traces.redact import redact_text
from refinery.wire.retry import Attempts, RetryPolicy, next_wait
from refinery.wire.transport import connection_reason

if TYPE_CHECKING:  # imported where a platform is called: `refinery plan` of a file calls none
    import aiohttp

__all__ = [
    "SOURCES",
    "SourceRef",
    "failed_traces",
    "fetch_trace",
    "fetched_copy",
    "is_source_ref",
    "kept_source",
    "load_trace_from",
    "parse_age",
    "platform_caller",
    "save_fetched",
]

SOURCES = ("langsmith", "langfuse", "phoenix")
_REF = re.compile(r"^(langsmith|langfuse|phoenix):(\S+)$")
MAX_PAGES = 200  # a trace of 20,000 runs; more is refused rather than fetched forever


class SourceError(RefineryError):
    """A trace platform refused or failed (not a mistake in the user's input)."""


class SourceConnectionError(SourceError):
    """A trace platform could not be reached (host, port and the system's reason said)."""


@dataclass(frozen=True)
class SourceRef:
    platform: str
    trace_id: str
    project: str | None = None  # Phoenix: the project holding the trace, when the reference names one

    def __str__(self) -> str:
        return f"{self.platform}:{self.project + '/' if self.project else ''}{self.trace_id}"


def is_source_ref(text: str, *, project: str | None = None) -> SourceRef | None:
    """`langsmith:<id>` / `langfuse:<id>` / `phoenix:[<project>/]<id>` as a reference, else None (a
    file path). `project` (`--project`) names a Phoenix trace's project when the reference does not."""
    m = _REF.match(text.strip())
    if not m:
        return None
    platform, ident = m.group(1), m.group(2)
    if platform != "phoenix":
        return SourceRef(platform, ident)
    named, _, trace_id = ident.rpartition("/")  # a Phoenix project name holds no slash
    if not trace_id:
        raise UserInputError(f"{text}: expected phoenix:<trace-id> or phoenix:<project>/<trace-id>")
    return SourceRef(platform, trace_id.lower(), named or project or None)


async def fetch_trace(ref: SourceRef, *, env: Mapping[str, str] | None = None, timeout_s: float = 60) -> Any:
    """The trace as the platform's API gives it, shaped for the file loader of its format."""
    import aiohttp

    env = os.environ if env is None else env
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session:
        if ref.platform == "langsmith":
            return await _langsmith(session, ref.trace_id, env)
        if ref.platform == "phoenix":
            return await _phoenix(session, ref, env)
        return await _langfuse(session, ref.trace_id, env)


def save_fetched(data: Any, path: Path, ref: SourceRef) -> Path:
    """The fetched trace as a JSON file, every string redacted (it is written beside the artifacts)."""
    write_json_atomic(path, _kept_form(data, ref))
    return path


def kept_source(path: Path) -> str | None:
    """The reference a trace file was fetched from (`save_fetched` records it), if it was."""
    kept = read_json(path, follow=False)  # a link in its place is refused, never read through
    return str(kept.get("refinery_source")) if isinstance(kept, dict) and kept.get("refinery_source") else None


FETCHED_PREFIX = "refinery-fetched-"
# The folders a command fetched traces into without an output folder (`plan langsmith:<id>`):
# removed when the command ends (`temporary_folders`), else when the process exits.
_FETCHED_FOLDERS: ContextVar[list[Path] | None] = ContextVar("refinery_fetched_folders", default=None)


def _temporary_folder() -> Path:
    folder = Path(tempfile.mkdtemp(prefix=FETCHED_PREFIX))  # private (0700)
    held = _FETCHED_FOLDERS.get()
    if held is not None:
        held.append(folder)
    else:
        atexit.register(shutil.rmtree, folder, True)
    return folder


@contextmanager
def temporary_folders() -> Iterator[None]:
    """Within it, a trace fetched without a folder goes to a temporary one removed at its end
    (the CLI runs each command in one: a fetched copy never outlives the command)."""
    held: list[Path] = []
    token = _FETCHED_FOLDERS.set(held)
    try:
        yield
    finally:
        _FETCHED_FOLDERS.reset(token)
        for folder in held:
            shutil.rmtree(folder, ignore_errors=True)


async def fetched_copy(ref: SourceRef, folder: Path | None, *, env: Mapping[str, str] | None = None) -> Path:
    """The trace as a file: `folder/trace.json` when it already holds this reference (a rerun
    does not fetch again), else fetched into it — or into a private temporary folder."""
    target = (folder or _temporary_folder()) / "trace.json"
    if kept_source(target) != str(ref):
        save_fetched(await fetch_trace(ref, env=env), target, ref)
    return target


async def load_trace_from(
    reference: str,
    *,
    folder: str | Path | None = None,
    project: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Trace:
    """A trace by id — `langsmith:<id>`, `langfuse:<id>`, `phoenix:[<project>/]<id>` — as the same
    `Trace` the file loaders make, redacted as the CLI's copy is. With `folder`, the copy is kept
    there as `trace.json` and read again next time instead of fetching; without, nothing is written."""
    ref = is_source_ref(reference, project=project)
    if ref is None:
        raise UserInputError(
            f"{reference!r}: not a trace by id; expected langsmith:<id>, langfuse:<id> or phoenix:<id> "
            "(load_trace reads files)"
        )
    if folder is not None:
        return load_trace(await fetched_copy(ref, Path(folder), env=env))
    return load_trace(_kept_form(await fetch_trace(ref, env=env), ref))


def _kept_form(data: Any, ref: SourceRef) -> dict[str, Any]:
    """What is kept of a fetched trace: every string redacted, an object, the reference it came from."""
    redacted = _redacted(data)
    return {"refinery_source": str(ref), **(redacted if isinstance(redacted, dict) else {"runs": redacted})}


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}
    return value


_AGE = re.compile(r"^(\d+)\s*([smhd])$")


def parse_age(text: str) -> float:
    """`90m`, `24h`, `7d` → seconds."""
    m = _AGE.match(text.strip().lower())
    if not m:
        raise UserInputError(f"--since: expected an age like 90m, 24h or 7d, got {text!r}")
    return int(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


async def failed_traces(
    platform: str, since_s: float, *, project: str | None = None, env: Mapping[str, str] | None = None
) -> list[str]:
    """The ids of the traces that failed in the last `since_s` seconds: LangSmith's root runs with
    an error in `project`; Langfuse's traces holding an observation at level ERROR; Phoenix's
    traces holding a span with status ERROR, in `project` or every project (`phoenix:<project>/<id>`)."""
    import aiohttp

    env = os.environ if env is None else env
    since = datetime.now(timezone.utc) - timedelta(seconds=since_s)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        if platform == "phoenix":
            return await _phoenix_failed(session, since, project, env)
        if platform == "langsmith":
            return await _langsmith_failed(session, since, project, env)
        return await _langfuse_failed(session, since, env)


# --- LangSmith ----------------------------------------------------------------------------------
def _langsmith_caller(session: aiohttp.ClientSession, env: Mapping[str, str]) -> _Caller:
    key = env.get("LANGSMITH_API_KEY") or env.get("LANGCHAIN_API_KEY")
    if not key:
        raise ConfigurationError("langsmith: set LANGSMITH_API_KEY (or LANGCHAIN_API_KEY)")
    base = env.get("LANGSMITH_ENDPOINT") or env.get("LANGCHAIN_ENDPOINT") or "https://api.smith.langchain.com"
    return _Caller(session, "langsmith", {"x-api-key": key}, "LANGSMITH_API_KEY", base.rstrip("/"))


async def _langsmith_query(call: _Caller, body: dict[str, Any], what: str, too_many: str | None) -> list[Any]:
    """The runs `POST /api/v1/runs/query` matches, page by page (`cursors.next`); past the page
    bound, `too_many` as the error (or, None, the runs so far)."""
    runs: list[Any] = []
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        page = await call(
            "POST",
            "/api/v1/runs/query",
            what,
            json_body={**body, "limit": 100, **({"cursor": cursor} if cursor else {})},
        )
        runs += page.get("runs") or []
        cursor = (page.get("cursors") or {}).get("next")
        if not cursor:
            return runs
    if too_many is not None:
        raise SourceError(too_many)
    return runs


async def _langsmith(session: aiohttp.ClientSession, run_id: str, env: Mapping[str, str]) -> dict[str, Any]:
    call = _langsmith_caller(session, env)
    run = await call("GET", f"/api/v1/runs/{run_id}", run_id)
    trace_id = str(run.get("trace_id") or run_id)
    too_many = f"langsmith: trace {trace_id} has more than {MAX_PAGES * 100} runs; export it to a file"
    return {"runs": await _langsmith_query(call, {"trace": trace_id}, trace_id, too_many)}


async def _langsmith_failed(
    session: aiohttp.ClientSession, since: datetime, project: str | None, env: Mapping[str, str]
) -> list[str]:
    if not project:
        raise UserInputError("--from langsmith: give --project NAME (the tracing project to list)")
    call = _langsmith_caller(session, env)
    found = await call("GET", f"/api/v1/sessions?name={quote(project)}", project)  # a list of projects
    if not isinstance(found, list) or not found:
        raise UserInputError(f"langsmith: no project {project!r}")
    body = {"session": [found[0]["id"]], "is_root": True, "error": True, "start_time": since.isoformat()}
    runs = await _langsmith_query(call, body, project, None)
    return list(dict.fromkeys(str(r.get("trace_id") or r["id"]) for r in runs))


# --- Langfuse -----------------------------------------------------------------------------------
def _langfuse_caller(session: aiohttp.ClientSession, env: Mapping[str, str]) -> _Caller:
    public, secret = env.get("LANGFUSE_PUBLIC_KEY"), env.get("LANGFUSE_SECRET_KEY")
    if not public or not secret:
        raise ConfigurationError("langfuse: set LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY")
    base = (env.get("LANGFUSE_HOST") or env.get("LANGFUSE_BASE_URL") or "https://cloud.langfuse.com").rstrip("/")
    auth = base64.b64encode(f"{public}:{secret}".encode()).decode()
    names = "LANGFUSE_PUBLIC_KEY / LANGFUSE_SECRET_KEY"
    return _Caller(session, "langfuse", {"Authorization": f"Basic {auth}"}, names, base)


async def _langfuse_observations(call: _Caller, query: str, what: str) -> list[Any]:
    """`GET /api/public/observations?{query}` page by page, to `meta.totalPages` (bounded)."""
    observations: list[Any] = []
    for page_no in range(1, MAX_PAGES + 1):
        page = await call("GET", f"/api/public/observations?{query}&page={page_no}&limit=100", what)
        observations += page.get("data") or []
        if page_no >= int((page.get("meta") or {}).get("totalPages") or 1):
            break
    return observations


async def _langfuse(session: aiohttp.ClientSession, trace_id: str, env: Mapping[str, str]) -> dict[str, Any]:
    call = _langfuse_caller(session, env)
    trace = await call("GET", f"/api/public/traces/{trace_id}", trace_id)
    observations = trace.pop("observations", None) or []
    if observations and not isinstance(observations[0], dict):  # ids only: fetch them page by page
        observations = await _langfuse_observations(call, f"traceId={trace_id}", trace_id)
    return {"trace": trace, "observations": observations}


async def _langfuse_failed(session: aiohttp.ClientSession, since: datetime, env: Mapping[str, str]) -> list[str]:
    call = _langfuse_caller(session, env)
    query = f"level=ERROR&fromStartTime={quote(since.isoformat())}"
    observations = await _langfuse_observations(call, query, "the failed observations")
    return list(dict.fromkeys(str(o["traceId"]) for o in observations if o.get("traceId")))


# --- Phoenix ------------------------------------------------------------------------------------
def _phoenix_caller(session: aiohttp.ClientSession, env: Mapping[str, str]) -> _Caller:
    base = env.get("PHOENIX_COLLECTOR_ENDPOINT") or env.get("PHOENIX_BASE_URL") or "http://localhost:6006"
    base = re.sub(r"/+v1/traces/?$", "", base.rstrip("/"))  # the collector variable may carry the OTLP path
    key = env.get("PHOENIX_API_KEY")
    return _Caller(session, "phoenix", {"Authorization": f"Bearer {key}"} if key else {}, "PHOENIX_API_KEY", base)


async def _phoenix_projects(call: _Caller, named: str | None, env: Mapping[str, str]) -> list[str]:
    """The project to look in: the one named, else `PHOENIX_PROJECT(_NAME)`, else every project."""
    named = named or env.get("PHOENIX_PROJECT") or env.get("PHOENIX_PROJECT_NAME")
    if named:
        return [named]
    return [str(p["name"]) for p in await _phoenix_pages(call, "/v1/projects?limit=100", "the projects")]


async def _phoenix_pages(
    call: _Caller, path: str, what: str, check: Callable[[list[Any]], None] | None = None
) -> list[Any]:
    items: list[Any] = []
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        page = await call("GET", path + (f"&cursor={quote(cursor)}" if cursor else ""), what)
        if check is not None:
            check(page.get("data") or [])
        items += page.get("data") or []
        cursor = page.get("next_cursor")
        if not cursor:
            return items
    raise SourceError(f"phoenix: {what} run past {MAX_PAGES} pages; export to a file instead")


async def _phoenix(session: aiohttp.ClientSession, ref: SourceRef, env: Mapping[str, str]) -> dict[str, Any]:
    call = _phoenix_caller(session, env)
    projects = await _phoenix_projects(call, ref.project, env)
    for project in projects:
        path = f"/v1/projects/{quote(project, safe='')}/spans?trace_id={quote(ref.trace_id)}&limit=1000"
        spans = await _phoenix_pages(
            call, path, f"{ref.trace_id} (project {project!r})", partial(_one_trace, ref, call)
        )
        if spans:
            return {"data": spans, "project": project}
    searched = ", ".join(repr(p) for p in projects[:10]) + (" …" if len(projects) > 10 else "")
    raise UserInputError(f"phoenix: no trace {ref.trace_id} in {call.base} (projects searched: {searched or 'none'})")


def _one_trace(ref: SourceRef, call: _Caller, spans: list[Any]) -> None:
    """A server older than Phoenix 13.9 ignores `trace_id` and pages through the whole project:
    refuse at the first page holding another trace's span rather than load them as this trace."""
    other = next(
        (s for s in spans if str((s.get("context") or {}).get("trace_id", ref.trace_id)) != ref.trace_id), None
    )
    if other is not None:
        raise SourceError(
            f"phoenix: {call.base} answered spans of other traces for {ref.trace_id} (a Phoenix older than 13.9 does "
            "not filter by trace); upgrade it, or export the trace to a file"
        )


async def _phoenix_failed(
    session: aiohttp.ClientSession, since: datetime, project: str | None, env: Mapping[str, str]
) -> list[str]:
    call = _phoenix_caller(session, env)
    ids: list[str] = []
    for name in await _phoenix_projects(call, project, env):
        q = f"status_code=ERROR&start_time={quote(since.isoformat())}&limit=1000"
        spans = await _phoenix_pages(call, f"/v1/projects/{quote(name, safe='')}/spans?{q}", f"project {name!r}")
        failed = [s for s in spans if s.get("status_code", "ERROR") == "ERROR"]  # a server ignoring the filter
        ids += [f"{name}/{s['context']['trace_id']}" for s in failed if (s.get("context") or {}).get("trace_id")]
    return list(dict.fromkeys(ids))


def platform_caller(session: aiohttp.ClientSession, platform: str, env: Mapping[str, str] | None = None) -> _Caller:
    """One platform's endpoint and credentials as the fetching found them, for a writer of the same
    platform (`--annotate`): the same variables, retries and one-line refusals, read in one place."""
    env = os.environ if env is None else env
    makers = {"langsmith": _langsmith_caller, "langfuse": _langfuse_caller, "phoenix": _phoenix_caller}
    return makers[platform](session, env)


# The transport's retry rules (`integrations.retry`: 429s as the answer asks, 408/409/5xx and lost
# connections with jittered backoff, `x-should-retry` obeyed, every count and wait bounded), with
# waits sized for a trace platform: a 429 that names no wait is tried again after 5–15 s, not
# OpenAI's minute, and one request waits two minutes at most.
SOURCE_RETRY = RetryPolicy(max_rate_limit_wait_s=120.0, fallback_rate_limit_wait_s=(5.0, 15.0))
_sleep = asyncio.sleep  # the one place a source waits (a test counts the waits here)


class _Caller:
    """One platform's GET/POST with its auth, the bounded retries, and errors that say what to check."""

    def __init__(
        self, session: aiohttp.ClientSession, platform: str, headers: dict[str, str], key_var: str, base: str
    ) -> None:
        self.session, self.platform, self.headers, self.key_var, self.base = session, platform, headers, key_var, base

    async def __call__(
        self, method: str, path: str, what: str, *, json_body: Any = None, accept: frozenset[int] = frozenset()
    ) -> Any:
        """The answer's JSON; a status in `accept` (a writer's 409: the record exists) is answered as
        `{"status": n}` instead of retried or refused."""
        import aiohttp

        attempts = Attempts()
        while True:
            try:
                async with self.session.request(method, self.base + path, headers=self.headers, json=json_body) as resp:
                    if resp.status < 400:
                        return await resp.json(content_type=None)
                    if resp.status in accept:
                        return {"status": resp.status}
                    status, headers = resp.status, {k.lower(): v for k, v in resp.headers.items()}
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                unreachable = True
                failed = (
                    f"{self.platform}: {connection_reason(exc)}"
                    if isinstance(exc, aiohttp.ClientError)
                    else f"{self.platform}: no answer from {self.base} (timed out)"
                )
                retry = next_wait(APIConnectionError(failed), 0, {}, attempts, SOURCE_RETRY)
            else:
                unreachable = False
                self._refuse(status, what)
                failed = f"{self.platform}: HTTP {status} from {self.base} for {what}"
                error = RateLimitError if status == 429 else APIStatusError
                retry = next_wait(
                    error(failed, status=status, headers=headers), status, headers, attempts, SOURCE_RETRY
                )
            if retry is None:
                raise (SourceConnectionError if unreachable else SourceError)(failed)
            attempts.record(retry)
            await _sleep(retry.wait_s)

    def _refuse(self, status: int, what: str) -> None:
        """The answers no retry can change, as one line that says what to check."""
        if status in (401, 403):
            raise ConfigurationError(f"{self.platform}: HTTP {status} from {self.base}: check {self.key_var}")
        if status == 404:
            raise UserInputError(f"{self.platform}: no trace {what} in {self.base} (HTTP 404)")
