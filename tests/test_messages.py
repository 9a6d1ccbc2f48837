"""Messages a newcomer meets when something is off: one exit code per cause in every command, the
HTTP status said once, a refused connection said with its host, port and the system's reason."""

from __future__ import annotations

import socket

from refinery.app.cli import amain
from refinery.app.demo import example_paths
from refinery.app.exit_codes import EXIT_ACCESS


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_a_base_url_without_v1_is_a_configuration_error_in_run_and_canary_alike(
    openai_server, monkeypatch, tmp_path, capsys
):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
    monkeypatch.setenv("OPENAI_BASE_URL", openai_server.base_url.removesuffix("/v1"))
    trace, _ = example_paths()
    assert await amain(["run", str(trace), "--out", str(tmp_path / "o")]) == EXIT_ACCESS
    assert await amain(["canary"]) == EXIT_ACCESS
    err = capsys.readouterr().err
    assert err.count("no such endpoint") == 2 and "404: 404" not in err and "HTTP 404: Not Found" in err


async def test_a_refused_connection_says_host_port_and_the_systems_reason(monkeypatch, tmp_path, capsys):
    port = closed_port()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{port}/v1")
    trace, _ = example_paths()
    assert await amain(["run", str(trace), "--out", str(tmp_path / "o")]) == EXIT_ACCESS
    assert await amain(["canary"]) == EXIT_ACCESS
    err = capsys.readouterr().err
    assert err.count(f"cannot connect to 127.0.0.1:{port}: Connection refused") == 2
    assert "ssl:" not in err and "Connect call failed" not in err


async def test_a_trace_platform_that_cannot_be_reached_is_a_connection_error_too(monkeypatch, tmp_path, capsys):
    port = closed_port()
    monkeypatch.setenv("LANGFUSE_HOST", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", "pk")
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", "sk")
    monkeypatch.setattr("refinery.traces.sources._sleep", _no_sleep)
    assert await amain(["run", "langfuse:abc", "--out", str(tmp_path / "o")]) == EXIT_ACCESS
    err = capsys.readouterr().err
    assert f"langfuse: cannot connect to 127.0.0.1:{port}: Connection refused" in err and "ClientConnector" not in err


async def _no_sleep(_seconds: float) -> None:
    return None
