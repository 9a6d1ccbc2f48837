"""Redact secrets before anything is written or uploaded. Pure functions.

Why on by default: a trace routinely carries the agent's own credentials (headers, tool
configs, environment dumps), and the files go to a third party. Each pattern is specific enough
that look-alikes survive (a UUID, `sk-` in prose, "Bearer of bad news"), and every replacement
says what kind of secret stood there, so the analysis can still mention "an API key was sent".
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

_HEADER = r"(?i)(\b"  # a header (or config) name, case-insensitive, opens the kept prefix group
# quotes (escaped or not), `:` or `=`, white space — and the renderer's private-use source marks
# (`traces.source_text`), which stand between a field's name and its value until they are stripped
_SEP = r"\\*[\"']?\s*[:=]\s*[\ue000-\ue005]*\\*[\"']?\s*"

# Before a token: a word boundary, a URL-encoded `=` or space (`%3Dghp_…`, `Bearer%20…`), or the
# `Z` that ends a timestamp in LangSmith's dotted order (`…T100000000000Z<run id>`)
_TOKEN_START = r"(?:(?<=%3[Dd])|(?<=%20)|(?<=\d[Zz])|\b)"

# Order matters: more specific patterns first (an Anthropic key also starts with "sk-").
PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    (
        "private_key",
        # to its END line; without one (an export cut it off), over the key's base64 lines
        re.compile(
            r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----"
            r"(?:[\s\S]*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----|(?:[A-Za-z0-9+/=\s]|\\[nr])*)"
        ),
    ),
    ("anthropic_key", re.compile(r"\bsk-ant-(?:api|admin)\d{2}-[A-Za-z0-9_-]{20,}")),
    ("openai_key", re.compile(r"\bsk-(?:proj-|svcacct-|admin-|None-)?[A-Za-z0-9_-]{20,}(?:T3BlbkFJ[A-Za-z0-9_-]+)?")),
    ("aws_access_key_id", re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b")),
    (
        "aws_secret_access_key",
        re.compile(r"(?i)(?<=aws_secret_access_key)([\"']?\s*[:=]\s*[\"']?)[A-Za-z0-9/+=]{40}(?![A-Za-z0-9/+=])"),
    ),
    ("github_token", re.compile(_TOKEN_START + r"(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})\b")),
    ("google_api_key", re.compile(_TOKEN_START + r"AIza[0-9A-Za-z_-]{35}")),
    ("stripe_key", re.compile(_TOKEN_START + r"(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{16,}")),
    ("huggingface_token", re.compile(_TOKEN_START + r"hf_[A-Za-z0-9]{30,}")),
    ("gitlab_token", re.compile(_TOKEN_START + r"glpat-[A-Za-z0-9_-]{20,}")),
    ("npm_token", re.compile(_TOKEN_START + r"npm_[A-Za-z0-9]{36}")),
    ("sendgrid_key", re.compile(_TOKEN_START + r"SG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}")),
    ("twilio_key", re.compile(_TOKEN_START + r"SK[0-9a-fA-F]{32}\b")),
    # a password in a connection URL: scheme://user:PASSWORD@host — the user and host are kept
    (
        "url_password",
        re.compile(
            r"(?i)(\b(?:postgres(?:ql)?|mysql|mariadb|mongodb(?:\+srv)?|rediss?|amqps?)://[^\s:/@]*:)[^\s@/]{3,}(?=@)"
        ),
    ),
    ("cookie", re.compile(r"(?i)(\b(?:set-)?cookie" + r"\\*[\"']?\s*:\s*[\ue000-\ue005]*\\*[\"']?\s*)[^\s\"'\\]{8,}")),
    (
        "password_field",
        re.compile(
            r"(?i)([\"']?(?:password|passwd|client_secret|private_key_id)[\"']?\s*[:=]\s*[\ue000-\ue005]*[\"']?)"
            r"[^\s\"'&,}]{4,}"
        ),
    ),
    ("slack_token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}")),
    ("slack_webhook", re.compile(r"https://hooks\.slack\.com/services/T[A-Za-z0-9]+/B[A-Za-z0-9]+/[A-Za-z0-9]+")),
    # A header name may sit in JSON that is itself inside a JSON string: `\"authorization\": \"Basic …\"`.
    # With a scheme (Bearer, Basic, …) any credential goes, however short; without one, 16+ chars.
    (
        "authorization_header",
        re.compile(
            _HEADER
            + r"(?:authorization|proxy-authorization)"
            + _SEP
            + r"(?:bearer|basic|token|digest)\s+)[A-Za-z0-9._~+/=-]{3,}"
        ),
    ),
    (
        "authorization_header",
        re.compile(
            _HEADER
            + r"(?:authorization|proxy-authorization)"
            + _SEP
            + r")(?!(?:bearer|basic|token|digest)\b)[A-Za-z0-9._~+/=-]{16,}"
        ),
    ),
    (
        "api_key_header",
        re.compile(_HEADER + r"(?:x-)?api[-_]?key" + _SEP + r")(?=[A-Za-z0-9._~+/=-]*\d)[A-Za-z0-9._~+/=-]{8,}"),
    ),
    (
        "url_credential",
        re.compile(
            r"(?i)([?&](?:api[-_]?key|key|token|access[-_]?token|auth|secret|password|sig|signature)=)[^&\s\"'#\\]{8,}"
        ),
    ),
    ("bearer_token", re.compile(r"(?i)((?:\b|(?<=%20))bearer(?:\s+|%20))[A-Za-z0-9._~+/-]{20,}=*")),
]


# Cheap literal checks (on the lower-cased text) that let a pattern be skipped when its secret
# cannot be there: most trace text holds none, and a regex scan of tens of MB is not free.
PREFILTERS: dict[str, tuple[str, ...]] = {
    "private_key": ("private key",),
    "anthropic_key": ("sk-ant-",),
    "openai_key": ("sk-",),
    "aws_access_key_id": ("akia", "asia", "abia", "acca"),
    "aws_secret_access_key": ("aws_secret_access_key",),
    "github_token": ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
    "slack_token": ("xox",),
    "slack_webhook": ("hooks.slack.com",),
    "authorization_header": ("authorization",),
    "api_key_header": ("api-key", "api_key", "apikey"),
    "url_credential": ("key=", "token=", "auth=", "secret=", "password=", "sig=", "signature="),
    "bearer_token": ("bearer",),
    "google_api_key": ("aiza",),
    "stripe_key": ("_live_", "_test_"),
    "huggingface_token": ("hf_",),
    "gitlab_token": ("glpat-",),
    "npm_token": ("npm_",),
    "sendgrid_key": ("sg.",),
    "twilio_key": ("sk",),
    "url_password": ("://",),
    "cookie": ("cookie",),
    "password_field": ("password", "passwd", "client_secret", "private_key_id"),
}


@dataclass
class RedactionReport:
    """How many secrets of each kind were replaced."""

    counts: Counter[str] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def as_dict(self) -> dict[str, int]:
        return dict(sorted(self.counts.items()))


_LITERALS = frozenset(lit for lits in PREFILTERS.values() for lit in lits)
_WINDOW = 1 << 16
_OVERLAP = max(map(len, _LITERALS))


def _literals_in(text: str) -> set[str]:
    """The prefilter literals that occur in `text`, case-insensitively.

    Lower-cased a window at a time: `str.lower()` of non-ASCII text allocates twelve bytes a
    character before it shrinks the result, so lowering the index of a big trace at once cost
    more memory than the trace.
    """
    found: set[str] = set()
    for start in range(0, max(len(text), 1), _WINDOW):
        window = text[max(0, start - _OVERLAP) : start + _WINDOW].lower()
        found.update(lit for lit in _LITERALS - found if lit in window)
    return found


def redact_text(text: str, report: RedactionReport | None = None) -> str:
    """`text` with every secret replaced by `[REDACTED:<kind>]`; counts go to `report`."""
    present = _literals_in(text)
    for kind, pattern in PATTERNS:
        if not any(lit in present for lit in PREFILTERS[kind]):
            continue
        marker = f"[REDACTED:{kind}]"

        def replace(m: re.Match[str], marker: str = marker, kind: str = kind) -> str:
            if report is not None:
                report.counts[kind] += 1
            prefix = m.group(1) if m.re.groups else ""
            return f"{prefix}{marker}"

        text = pattern.sub(replace, text)
    return text


# Redaction while rendering: each value of the trace is redacted before the renderer cuts it,
# wraps it or puts a run-id marker into it (a secret split by a cut or a marker is no longer
# recognised). A context variable, so concurrent renderings each count into their own report.
_RENDERING: ContextVar[RedactionReport | None] = ContextVar("refinery_redaction", default=None)


@contextmanager
def redacting(report: RedactionReport) -> Iterator[None]:
    """Within this block, `redact_value` redacts into `report`."""
    token = _RENDERING.set(report)
    try:
        yield
    finally:
        _RENDERING.reset(token)


def redact_value(text: str) -> str:
    """A trace value as it may be rendered: redacted inside a `redacting` block, else as it is."""
    report = _RENDERING.get()
    return text if report is None or len(text) < 8 else redact_text(text, report)
