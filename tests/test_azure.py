"""Azure OpenAI: `AZURE_OPENAI_ENDPOINT` selects it — its v1 API under `/openai/v1`, the key in an
`api-key` header (or a Microsoft Entra token as a bearer token), `--model` the deployment and
`--base-model` the model it is — and the whole analysis runs through that path against the test
server in Azure mode."""

from __future__ import annotations

import json

import pytest

from refinery.app.cli import amain
from refinery.errors import ConfigurationError
from refinery.testing.server import OpenAITestServer
from refinery.wire.transport import ApiSettings

KEY = "az-" + "k3y" * 10


def test_the_azure_endpoint_selects_the_v1_path_and_the_api_key_header():
    s = ApiSettings.from_env(
        env={"AZURE_OPENAI_ENDPOINT": "https://acme.openai.azure.com/", "AZURE_OPENAI_API_KEY": KEY}
    )
    assert s.backend == "azure" and s.base_url == "https://acme.openai.azure.com/openai/v1"
    assert s.headers() == {"api-key": KEY} and KEY not in repr(s)
    assert s.host == "Azure OpenAI at https://acme.openai.azure.com/openai/v1"


def test_an_entra_token_goes_as_a_bearer_token_asked_for_each_request():
    tokens = iter(["t1", "t2"])
    s = ApiSettings.from_env(
        env={"AZURE_OPENAI_ENDPOINT": "https://acme.openai.azure.com"}, token_provider=lambda: next(tokens)
    )
    assert s.headers() == {"Authorization": "Bearer t1"} and s.headers() == {"Authorization": "Bearer t2"}
    fixed = ApiSettings.from_env(env={"AZURE_OPENAI_ENDPOINT": "https://a.example", "AZURE_OPENAI_AD_TOKEN": "tok"})
    assert fixed.headers() == {"Authorization": "Bearer tok"}


async def test_an_async_entra_token_provider_is_awaited_and_a_sync_one_runs_off_the_event_loop():
    import threading

    async def fresh() -> str:
        return "async-token"

    s = ApiSettings.from_env(env={"AZURE_OPENAI_ENDPOINT": "https://acme.openai.azure.com"}, token_provider=fresh)
    assert await s.request_headers() == {"Authorization": "Bearer async-token"}
    loop_thread, called_in = threading.get_ident(), []

    def blocking() -> str:  # azure-identity's provider makes an HTTP call when the token is stale
        called_in.append(threading.get_ident())
        return "sync-token"

    s = ApiSettings.from_env(env={"AZURE_OPENAI_ENDPOINT": "https://acme.openai.azure.com"}, token_provider=blocking)
    assert await s.request_headers() == {"Authorization": "Bearer sync-token"}
    assert called_in and called_in[0] != loop_thread


def test_azure_without_a_key_or_token_names_what_to_set():
    with pytest.raises(ConfigurationError, match="set AZURE_OPENAI_API_KEY, or AZURE_OPENAI_AD_TOKEN"):
        ApiSettings.from_env(env={"AZURE_OPENAI_ENDPOINT": "https://acme.openai.azure.com"})


def test_an_explicit_openai_base_url_wins_over_the_azure_endpoint():
    s = ApiSettings.from_env(
        env={
            "AZURE_OPENAI_ENDPOINT": "https://a.example",
            "OPENAI_BASE_URL": "http://127.0.0.1:1/v1",
            "OPENAI_API_KEY": "sk-x",
        }
    )
    assert s.backend == "openai" and s.headers() == {"Authorization": "Bearer sk-x"}


@pytest.fixture
async def azure_env(monkeypatch):
    async with OpenAITestServer(azure=True, api_key=KEY) as server:
        for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_PROJECT", "OPENAI_ORG_ID"):
            monkeypatch.delenv(var, raising=False)
        monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", server.azure_endpoint)
        monkeypatch.setenv("AZURE_OPENAI_API_KEY", KEY)
        yield server


async def test_the_whole_analysis_runs_through_the_azure_path(azure_env, tmp_path):
    from pathlib import Path

    fix = Path(__file__).parent / "fixtures"
    out = tmp_path / "out"
    argv = ["run", str(fix / "otlp_trace.json"), "--expect", str(fix / "expectation.json"), "--out", str(out)]
    assert await amain([*argv, "--model", "prod-gpt4o", "--base-model", "gpt-4o"]) == 0
    stats = azure_env.stats
    assert stats["auth api-key"] > 0 and stats["auth bearer"] == 0
    assert stats["POST /openai/v1/responses"] >= 4 and stats["POST /openai/v1/files"] > 0
    assert {b["model"] for b in azure_env.response_bodies} == {"prod-gpt4o"}  # the deployment's name
    usage = json.loads((out / "usage.json").read_text())
    assert usage["total"]["estimated_cost_usd"] is not None  # priced as the base model
    assert (out / "report.html").is_file() and azure_env.files == {} and azure_env.stores == {}
    written = "".join(p.read_text(errors="replace") for p in out.rglob("*") if p.is_file())
    assert KEY not in written


async def test_canary_says_it_reached_azure(azure_env, capsys):
    assert await amain(["canary", "--model", "prod-gpt4o"]) == 0
    assert f"on Azure OpenAI at {azure_env.azure_endpoint}/openai/v1 answered" in capsys.readouterr().out


async def test_a_wrong_azure_key_names_the_azure_variable(azure_env, monkeypatch, capsys):
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "wrong")
    assert await amain(["canary"]) == 3
    assert "check AZURE_OPENAI_API_KEY" in capsys.readouterr().err
