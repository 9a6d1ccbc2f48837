"""A catalogue rule tried only where its matches can start gives `pattern.sub`'s text, match for match."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

from refinery.testing.openapi_spec import find_shared
from refinery.traces import redact, redact_leads
from refinery.traces.redact_leads import _OVERLAP, _WINDOW, Lowered, leads_of, sub_from_leads
from refinery.traces.redact_rules import RULES
from tests.secret_shapes import PLANTS

LED = [rule for rule in RULES if leads_of(rule.pattern) is not None]
SHARED = find_shared(Path(__file__))


def _mark(m: re.Match[str]) -> str:
    return f"<{m.start()}:{m.group(1) if m.re.groups else ''}>"


@pytest.fixture
def led(monkeypatch: pytest.MonkeyPatch) -> None:
    """Leads used however dense they are (planted texts are dense; see the test of that below)."""
    monkeypatch.setattr(redact_leads, "_SPARSEST", 1)


def _both(pattern: re.Pattern[str], text: str) -> tuple[str | None, str]:
    assert leads_of(pattern) is not None
    return sub_from_leads(pattern, Lowered(text), _mark), pattern.sub(_mark, text)


# --- the leads read from a pattern ---------------------------------------------------------------


def test_each_branch_of_an_alternation_gives_its_own_lead() -> None:
    assert leads_of(re.compile(r"(?i)(?:client|secret)[_-]?key")) == {"client", "secret"}


def test_an_optional_prefix_gives_a_lead_with_it_and_one_without() -> None:
    assert leads_of(re.compile(r"(?i)(?:set-)?cookie:")) == {"set-cookie:", "cookie:"}


def test_word_boundaries_and_look_behinds_take_no_text() -> None:
    assert leads_of(re.compile(r"(?i)(?:\b|(?<=\\n))pass(?:word|wd)=")) == {"password=", "passwd="}


def test_leads_are_lower_cased_and_none_is_a_longer_copy_of_another() -> None:
    assert leads_of(re.compile(r"(?i)(?:Token|TOKEN_ID|(?-i:PWD))\d")) == {"token", "pwd"}


def test_a_pattern_that_begins_with_a_class_has_no_leads() -> None:
    assert leads_of(re.compile(r"(?i)[a-z][a-z0-9+.-]{1,30}://")) is None


def test_a_one_character_lead_is_no_lead() -> None:
    assert leads_of(re.compile(r"(?i)a\d|bc")) is None


def test_a_case_sensitive_pattern_that_begins_with_a_literal_is_left_to_the_engine() -> None:
    assert leads_of(re.compile(r"ghp_[A-Za-z0-9]{36}")) is None
    assert leads_of(re.compile(r"(?i)ghp_[A-Za-z0-9]{36}")) == {"ghp_"}


def test_the_slow_field_and_provider_rules_of_the_catalogue_have_leads() -> None:
    kinds = {rule.kind for rule in LED}
    assert {"secret_field", "provider_key", "password_field", "authorization_header", "cookie"} <= kinds


# --- the same text as `pattern.sub` --------------------------------------------------------------

_SEPARATORS = ["=", ": ", '": "', '\\": \\"', "=>", " = '", ":\t", "\ue000"]
_VALUES = ["abcdef123456", "Zx9" * 7, "short", "[REDACTED:x]", "a b c 1 2 3", "x" * 40 + "1", "\\u00e9t\\u00e9"]
_NOISE = ["the agent ", "\n", "\\n", ", ", '"id": 7', "ı", "ſ", "K", "é", "%20", "2024-01-01T00:00:00Z"]


def _planted_text(rng: random.Random, rule_leads: frozenset[str]) -> str:
    parts = []
    for _ in range(rng.randint(1, 12)):
        lead = rng.choice(sorted(rule_leads))
        lead = "".join(ch.upper() if rng.random() < 0.3 else ch for ch in lead)
        if rng.random() < 0.2:  # written with the characters `(?i)` folds to i and s
            lead = lead.replace("i", "ı").replace("s", "ſ")
        parts += [
            rng.choice(_NOISE),
            lead,
            rng.choice(["", "_key", "-token", "_secret", "word"]),
            rng.choice(_SEPARATORS),
        ]
        parts.append(rng.choice(_VALUES))
    return "".join(parts)


@pytest.mark.parametrize("rule", LED, ids=lambda r: r.kind)
def test_every_led_rule_replaces_what_sub_replaces_in_planted_texts(rule: redact.Rule, led: None) -> None:
    rng = random.Random(rule.kind)
    leads = leads_of(rule.pattern)
    assert leads is not None
    for _ in range(60):
        text = _planted_text(rng, leads)
        fast, slow = _both(rule.pattern, text)
        assert fast == slow, text


def test_a_match_written_with_dotless_i_and_long_s_is_found_as_the_engine_finds_it(led: None) -> None:
    pattern = re.compile(r"(?i)(client[_-]?secret=)\w+")
    fast, slow = _both(pattern, "ſome cLıENT_ſECRET=abc123 and client_secret=def")
    assert fast == slow == "ſome <5:cLıENT_ſECRET=> and <30:client_secret=>"


def test_a_text_whose_lower_case_is_longer_is_left_to_the_whole_search(led: None) -> None:
    pattern = re.compile(r"(?i)(secret=)\w+")
    text = "İstanbul secret=abc123"
    assert leads_of(pattern) is not None
    assert sub_from_leads(pattern, Lowered(text), _mark) is None
    assert redact.redact_text(text) == "İstanbul secret=[REDACTED:secret_field]"


@pytest.mark.parametrize("offset", [-9, -5, -1, 0, 3, _OVERLAP - 2])
def test_a_lead_across_a_window_s_end_is_found_once(offset: int, led: None) -> None:
    pattern = re.compile(r"(?i)(client_secret=)\w+")
    head = "x " * ((_WINDOW + offset) // 2) + "x" * ((_WINDOW + offset) % 2)
    text = head + "Client_Secret=abc123 " + "y " * 40_000 + "client_secret=tail9"
    fast, slow = _both(pattern, text)
    assert fast == slow
    assert fast is not None and fast.count("<") == 2


def test_a_match_inside_the_last_one_is_not_taken_again(led: None) -> None:
    pattern = re.compile(r"(?i)(auth=)\S+")
    fast, slow = _both(pattern, "auth=auth=auth=x auth=y")
    assert fast == slow == "<0:auth=> <17:auth=>"


def test_leads_denser_than_one_in_sixteen_characters_are_left_to_the_engine_s_scan() -> None:
    pattern = re.compile(r"(?i)(auth=)\d+")
    assert sub_from_leads(pattern, Lowered("auth=x " * 100), _mark) is None
    assert sub_from_leads(pattern, Lowered("auth=1" + " " * 100), _mark) == "<0:auth=>" + " " * 100


@pytest.mark.skipif(SHARED is None or not (SHARED / "eval-data").is_dir(), reason="../shared/eval-data not present")
def test_redacting_real_runs_with_leads_gives_the_text_redacting_without_them_gives(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The Who&When logs' steps and two TRAIL traces (which hold no secret of their own), each with
    the planted example of every shape (`secret_shapes`) put in at random places, redacted both ways."""
    assert SHARED is not None
    rng = random.Random(7)
    texts: list[str] = []
    for path in sorted((SHARED / "eval-data" / "who-and-when").glob("*/*.json"))[:12]:
        for step in json.loads(path.read_text())["history"]:
            texts.append(json.dumps(step, ensure_ascii=False))
    for path in sorted((SHARED / "eval-data" / "trail" / "traces").glob("*/*.json"))[:2]:
        texts.append(path.read_text()[:400_000])
    for i, text in enumerate(texts):
        for _kind, plant, _part in rng.sample(PLANTS, 3):
            at = rng.randrange(len(text) + 1)
            text = f"{text[:at]} {plant} {text[at:]}"
        texts[i] = text
    report_fast, report_slow = redact.RedactionReport(), redact.RedactionReport()
    fast = [redact.redact_text(t, report_fast) for t in texts]
    monkeypatch.setattr(redact_leads, "leads_of", lambda pattern: None)
    slow = [redact.redact_text(t, report_slow) for t in texts]
    assert fast == slow
    assert report_fast.counts == report_slow.counts and report_fast.total > 0
