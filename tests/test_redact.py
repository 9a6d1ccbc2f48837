"""Redaction: a table of secrets that must go and look-alikes that must stay."""

from __future__ import annotations

import pytest

from refinery.traces.redact import RedactionReport, redact_text

POSITIVES = [
    ("openai_key", "key=sk-proj-Abc123def456Ghi789jkl012MNO345pqr678"),
    ("openai_key", "OPENAI_API_KEY=sk-abcdefghijklmnopqrstuvwxT3BlbkFJabcdefghijklmnopqrstuvwx"),
    ("openai_key", "sk-svcacct-AbCdEfGhIjKlMnOpQrStUvWxYz012345"),
    ("anthropic_key", "x-api-key: sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_abcdEFGH"),
    ("aws_access_key_id", "aws_access_key_id = AKIAIOSFODNN7EXAMPLE"),
    ("aws_secret_access_key", "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
    ("github_token", "token ghp_ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghij"),
    ("github_token", "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz"),
    ("slack_token", "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"),
    ("slack_webhook", "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"),
    ("private_key", "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA7\nabc\n-----END RSA PRIVATE KEY-----"),
    ("private_key", "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----"),
    ("authorization_header", '"Authorization": "Basic dXNlcm5hbWU6cGFzc3dvcmQxMjM="'),
    ("authorization_header", "authorization: Token 9f8e7d6c5b4a39281706abcdef"),
    ("jwt", "curl -H 'X-Auth: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.sig_abcdefghij'"),
]

# (kind, text, the secret that must be gone): short or embedded credentials the 20-character
# heuristic above would not catch
SHORT_OR_EMBEDDED = [
    ("authorization_header", '{"body": "{\\"authorization\\": \\"Basic dXNlcjpwYXNz\\"}"}', "dXNlcjpwYXNz"),
    ("authorization_header", "{'headers': {'Authorization': 'Bearer abc123'}}", "abc123"),
    ("authorization_header", "authorization: basic dXNlcjpwYXNz", "dXNlcjpwYXNz"),
    ("authorization_header", "Proxy-Authorization: Digest 0a1b2c3d", "0a1b2c3d"),
    ("api_key_header", '{"x-api-key": "0123456789abcdef0123456789abcdef"}', "0123456789abcdef0123456789abcdef"),
    ("api_key_header", '\\"X-Api-Key\\": \\"9f8e7d6c5b4a3928\\"', "9f8e7d6c5b4a3928"),
    ("api_key_header", "api-key: 9f8e7d6c5b4a3928", "9f8e7d6c5b4a3928"),
    (
        "url_credential",
        "GET https://api.example.com/v1/data?api_key=0123456789abcdef0123456789abcdef&page=2",
        "0123456789abcdef0123456789abcdef",
    ),
    ("url_credential", "https://maps.example.com/geo?key=AIzaSyA1b2C3d4E5f6", "AIzaSyA1b2C3d4E5f6"),
    ("url_credential", "wss://stream.example.com/?token=abc123def456", "abc123def456"),
]

SURVIVORS = [
    "run id 6f1c2d3e-0000-4000-8000-000000000001 failed",
    "the task-manager-service-account-name-is-long handles it",
    "ask sk-short for help",
    "Bearer of bad news",
    "Authorization: required before refund",
    "ghp_short is not a token",
    "AKIA is an acronym; AKIAshort too",
    "trace 4bf92f3577b34da6a3ce929d0e0e4736 span 00f067aa0ba902b7",
    "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkq\n-----END PUBLIC KEY-----",
    "risk-assessment-and-compliance-review-2026 done",
    "the api_key parameter is required",
    "def connect(api_key: str = None): ...",
    "api_key=os.environ['OPENAI_API_KEY']",
    "GET /search?page=2&key=value&sort=asc",
    "Authorization: Bearer of bad news",
]


@pytest.mark.parametrize(("kind", "text"), POSITIVES, ids=[f"{k}-{i}" for i, (k, _) in enumerate(POSITIVES)])
def test_secrets_are_replaced_and_counted(kind, text):
    report = RedactionReport()
    out = redact_text(text, report)
    assert f"[REDACTED:{kind}]" in out
    assert report.counts[kind] >= 1
    secretish = [w for w in text.replace('"', " ").replace("'", " ").split() if len(w) >= 20 and w != kind]
    for word in secretish:
        assert word not in out


@pytest.mark.parametrize(
    ("kind", "text", "secret"), SHORT_OR_EMBEDDED, ids=[f"{k}-{i}" for i, (k, _, _) in enumerate(SHORT_OR_EMBEDDED)]
)
def test_short_and_embedded_credentials_are_replaced(kind, text, secret):
    report = RedactionReport()
    out = redact_text(text, report)
    assert secret not in out and f"[REDACTED:{kind}]" in out
    assert report.counts[kind] == 1


@pytest.mark.parametrize("text", SURVIVORS)
def test_look_alikes_survive(text):
    report = RedactionReport()
    assert redact_text(text, report) == text
    assert report.total == 0


def test_counts_accumulate_per_kind():
    report = RedactionReport()
    redact_text("sk-proj-" + "a" * 30 + " and sk-proj-" + "b" * 30 + " and AKIAIOSFODNN7EXAMPLE", report)
    assert report.as_dict() == {"aws_access_key_id": 1, "openai_key": 2}


def test_a_secret_across_the_prefilters_window_edge_is_still_found():
    """The prefilter lower-cases the text a window (65,536 characters) at a time, overlapping."""
    secret = "sk-proj-Abc123def456Ghi789jkl012MNO345pqr678"
    text = "—" + "x" * (65_536 - 3) + " " + secret + " and more"  # "sk-" straddles the edge; non-ASCII text
    assert secret not in redact_text(text) and "[REDACTED:openai_key]" in redact_text(text)


SHAPES = {
    "github_token": "ghp_" + "A1b2C3d4" * 5,
    "openai_key": "sk-proj-" + "Zy9Xw8Vu" * 4,
    "google_api_key": "AIza" + "B" * 35,
    "stripe_key": "sk_live_" + "Q9r8S7t6" * 3,
    "huggingface_token": "hf_" + "h" * 34,
    "gitlab_token": "glpat-" + "g" * 20,
    "npm_token": "npm_" + "n" * 36,
    "sendgrid_key": "SG." + "s" * 22 + "." + "t" * 43,
    "twilio_key": "SK" + "0123456789abcdef" * 2,
    "url_password": "postgres://app:Pa55word99@db:5432/x",
    "cookie": "Cookie: sessionid=abc123def456ghi789",
    "password_field": '{"password": "correct-horse-battery"}',
    "url_encoded": "next%3Dghp_" + "E" * 36,
}
# the part that must never be uploaded (a shape's key name or user name may stay)
SECRET_PART = {
    **SHAPES,
    "url_password": "Pa55word99",
    "cookie": "abc123def456ghi789",
    "password_field": "correct-horse-battery",
    "url_encoded": "E" * 36,
}


@pytest.mark.parametrize("kind", sorted(SHAPES))
def test_no_planted_secret_survives_a_cut_or_a_marker_at_any_offset(kind):
    """A secret in a long tool output, at offsets that put the renderer's cut (head 400 / tail 600
    of 1,000) and its run-id markers (every 300 characters) through it: never in any file."""
    from refinery.core.models import Trace, TraceRun
    from refinery.traces.render import RenderOptions
    from refinery.traces.spool import upload_files_for

    options = RenderOptions(max_field_chars=1000, marker_every_chars=300)
    secret = SECRET_PART[kind]
    for offset in range(360, 440, 3):  # around the head's end (character 400)
        text = "x" * offset + " " + SHAPES[kind] + " " + "y" * 3000
        trace = Trace(trace_id="t", runs=[TraceRun(id="r1", name="tool", inputs={"log": text}, outputs={"log": text})])
        files, report = upload_files_for(trace, options=options)
        assert not any(secret in t for _, t in files), (kind, offset)
        assert report.total >= 1


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (
            "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nBKcwggSjAgEAAoIBAQC7 [cut]",
            "BKcwggSjAgEAAoIBAQC7",
        ),
        ('{"pem": "-----BEGIN RSA PRIVATE KEY-----\\nMIIEpAIBAAKCAQEA7\\nZm9vYmFyYmF6"}', "Zm9vYmFyYmF6"),
        ("20260301T100000000000Zghp_" + "A" * 36 + ".20260301T100002Z", "ghp_" + "A" * 36),
        ("https://x.example/cb?next%3Dghp_" + "B" * 36, "ghp_" + "B" * 36),
        ("Authorization=Bearer%20" + "eyJhbGciOiJIUzI1NiJ9abcdefghijk", "eyJhbGciOiJIUzI1NiJ9abcdefghijk"),
    ],
    ids=["pem-without-end", "pem-escaped-without-end", "dotted-order-run-id", "url-encoded-token", "bearer-%20"],
)
def test_secrets_an_export_cut_or_glued_to_other_text_are_still_found(text, secret):
    assert secret not in redact_text(text)
