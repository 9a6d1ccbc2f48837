"""The redaction catalogue: every shape it lists is replaced wherever it stands — alone, glued to
other text, inside JSON (once or twice encoded), across the renderer's marks, in the value of a
secret-named field however structured — every rule names its source, and an organisation's
own patterns are applied as the built-in ones are."""

from __future__ import annotations

import json
import re

import pytest

from refinery.errors import RefineryError
from refinery.traces import redact, redact_scan
from refinery.traces.redact import RULES, RedactionReport, compile_patterns, redact_text, redacting
from refinery.traces.render import iter_marked_files
from refinery.traces.source_text import strip_marks
from tests.secret_shapes import PLANTS

IDS = [f"{kind}-{i}" for i, (kind, _, _) in enumerate(PLANTS)]


@pytest.mark.parametrize(("kind", "text", "secret"), PLANTS, ids=IDS)
def test_each_shape_is_replaced_with_its_kind(kind, text, secret):
    report = RedactionReport()
    out = redact_text(f"before {text} after", report)
    assert secret not in out
    assert f"[REDACTED:{kind}]" in out and report.counts[kind] >= 1


@pytest.mark.parametrize(("kind", "text", "secret"), PLANTS, ids=IDS)
def test_each_shape_is_replaced_inside_json_held_in_a_string(kind, text, secret):
    once = json.dumps({"note": text})
    for encoded in (once, json.dumps({"body": once})):
        assert secret not in redact_text(encoded).replace("\\\\", "\\")


def test_every_rule_names_its_source():
    assert all(r.source.split(":")[0] in ("gitleaks", "github", "refinery") for r in RULES)
    assert {"gitleaks:npm-access-token", "gitleaks:pypi-upload-token", "gitleaks:jwt"} <= {r.source for r in RULES}


@pytest.mark.parametrize("token", ["ghp_" + "A" * 36, "npm_" + "b" * 36, "glpat-" + "c" * 20, "shpat_" + "d" * 32])
def test_a_prefixed_token_is_found_glued_to_other_word_characters(token):
    assert token not in redact_text(f"id=xyz{token} and _{token}")


def test_a_secret_named_field_loses_its_whole_value_whatever_it_holds(tmp_path):
    from refinery.traces import load_trace

    runs = [
        {
            "id": "r1",
            "name": "connect",
            "run_type": "tool",
            "trace_id": "r1",
            "start_time": "2026-03-01T10:00:00+00:00",
            "inputs": {
                "creds": {"aws": {"aws_secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}},
                "password": ["first secret words", 'Second, with "quotes"'],
                "client_secret": {"value": "nested-secret-value", "rotated": "older-secret-value"},
                "manifest": {"kind": "Secret", "data": {"token": "c2VjcmV0LXRva2Vu"}},
                "config": {"auths": {"ghcr.io": {"auth": "dXNlcjpwYXNzd29yZA=="}}},
            },
        }
    ]
    path = tmp_path / "runs.json"
    path.write_text(json.dumps(runs))
    report = RedactionReport()
    with redacting(report):
        text = "".join(strip_marks(redact_text(marked, report))[0] for _, marked in iter_marked_files(load_trace(path)))
    for secret in ("wJalrXUtnFEMI", "first secret", "quotes", "nested-secret", "older-secret", "c2VjcmV0", "dXNlcjpw"):
        assert secret not in text
    assert "aws_secret_access_key: [REDACTED:" in text and "password: [REDACTED:password_field]" in text


def test_a_field_value_is_replaced_across_the_renderers_marks():
    marked = "aws_secret_access_key: \ue000wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\ue001\npassword: \ue000a b, c\ue001"
    out = redact_text(marked)
    assert "wJalrXUtnFEMI" not in out and "a b, c" not in out
    assert out.count("\ue000") == 2 and out.count("\ue001") == 2  # the marks stay balanced


LOOKALIKES = [
    "the password is required",
    "max_tokens: 4096, prompt_tokens: 1200",
    "PWD=/home/user/project",
    "secret: keep it simple",
    "https://registry.npmjs.org:443/@scope/pkg",
    "postgres://db.internal:5432/shop",
    "the task_test_ suite",
    "disk-usage-report-for-the-whole-cluster",
    "Authorization: required before refund",
    "session_token_ttl: 3600s",
]


@pytest.mark.parametrize("text", LOOKALIKES)
def test_lookalikes_survive(text):
    assert redact_text(text) == text


def test_an_organisations_own_pattern_is_applied_and_counted():
    report = RedactionReport()
    out = redact_text("ticket ACME-ZZ-0042-SECRET sent", report, compile_patterns([r"ACME-[A-Z]{2}-\d{4}-\w+"]))
    assert out == "ticket [REDACTED:custom] sent" and report.counts["custom"] == 1


def test_a_pattern_that_is_not_a_regex_is_refused_on_one_line():
    with pytest.raises(RefineryError) as err:
        compile_patterns(["(unclosed"])
    assert "--redact-pattern" in str(err.value) and "\n" not in str(err.value)


def test_the_analyst_redacts_an_organisations_own_pattern_from_what_it_renders(tmp_path):
    from refinery.analysis.staged_failure_analyst import StagedFailureAnalyst
    from refinery.core.models import DomainExpertExpectation
    from refinery.traces import load_trace

    path = tmp_path / "chat.json"
    path.write_text(json.dumps([{"role": "user", "content": "Use ticket ACME-ZZ-0042-SECRET7 to refund order 42"}]))
    expectation = DomainExpertExpectation(description="Refund with ACME-ZZ-0043-OTHER9 only")
    analyst = StagedFailureAnalyst(redact_patterns=[r"ACME-[A-Z]{2}-\d{4}-\w+"])
    files, redaction = analyst.rendering(load_trace(path), expectation)
    text = "".join(t for _, t in files)
    assert "ACME-ZZ-0042" not in text and "ACME-ZZ-0043" not in text
    assert redaction.counts["custom"] >= 2


def test_plan_shows_an_organisations_own_pattern_redacted_and_refuses_a_bad_one(tmp_path, capsys):
    from refinery.app.cli import main

    trace = tmp_path / "chat.json"
    trace.write_text(json.dumps([{"role": "user", "content": "Use ticket ACME-ZZ-0042-SECRET7 to refund order 42"}]))
    expect = tmp_path / "expect.json"
    expect.write_text('{"description": "Refund order 42 with ticket ACME-ZZ-0043-OTHER9"}')
    argv = ["plan", str(trace), "--expect", str(expect), "--show-bodies", "--json"]
    argv += ["--redact-pattern", r"ACME-[A-Z]{2}-\d{4}-\w+"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "ACME-ZZ-004" not in out and "[REDACTED:custom]" in out
    assert main(["plan", str(trace), "--expect", str(expect), "--redact-pattern", "(unclosed"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--redact-pattern '(unclosed'" in err


def test_header_attributes_holding_lists_lose_every_value(tmp_path):
    from refinery.traces import load_trace

    runs = [
        {
            "id": "r1",
            "name": "http",
            "run_type": "tool",
            "trace_id": "r1",
            "start_time": "2026-03-01T10:00:00+00:00",
            "inputs": {
                "http.request.header.authorization": ["Bearer abc123"],
                "http.request.header.cookie": ["sid=s3ss10n; theme=dark"],
            },
        }
    ]
    path = tmp_path / "runs.json"
    path.write_text(json.dumps(runs))
    report = RedactionReport()
    with redacting(report):
        text = "".join(strip_marks(redact_text(marked, report))[0] for _, marked in iter_marked_files(load_trace(path)))
    assert "abc123" not in text and "s3ss10n" not in text


def test_a_rule_is_skipped_only_where_its_match_could_not_start(monkeypatch):
    """A rule without prefilter literals runs only on text holding the exact text its matches begin
    with: on every planted shape, alone and all together, that redacts as running every rule does."""
    texts = [f"before {text} after" for _, text, _ in PLANTS] + [" ".join(text for _, text, _ in PLANTS)]
    fast = [(redact_text(t, r := RedactionReport()), r.as_dict()) for t in texts]
    every_time = [(rule, literals, "") for rule, literals, _ in redact._ORDER]
    monkeypatch.setattr(redact, "_ORDER", every_time)  # each rule without literals runs on every text
    assert fast == [(redact_text(t, r := RedactionReport()), r.as_dict()) for t in texts]


def test_the_text_a_match_begins_with_is_read_from_the_pattern():
    assert redact_scan._required_prefix(re.compile(r"sk-ant-(?:api|sid)\d{2}")) == "sk-ant-"
    assert redact_scan._required_prefix(re.compile(r"SG\.[\w-]{16,}")) == "SG."
    assert redact_scan._required_prefix(re.compile(r"(?i)ghp_\w+")) == ""  # either case: no exact text
    assert redact_scan._required_prefix(re.compile(r"[a-z]+_key")) == ""
    assert all(redact._PREFIXES.values())  # every rule without literals has one
