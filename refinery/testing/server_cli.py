"""`python -m refinery.testing.server`: the local OpenAI-compatible test server as a process, its
base URL printed on the first line (for trying the CLI by hand, and for benchmarks that give the
server a CPU of its own)."""

from __future__ import annotations

import argparse
import asyncio

from refinery.testing.server import OpenAITestServer

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m refinery.testing.server", description="Local OpenAI-compatible test server (a test double)."
    )
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--indexing-delay", type=float, default=0.0, help="seconds a file stays in_progress")
    parser.add_argument("--rpm", type=int, help="requests-per-minute limit")
    parser.add_argument("--tpm", type=int, help="tokens-per-minute limit")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every /responses call")
    parser.add_argument("--upload-latency", type=float, default=0.0, help="seconds added to every file upload")
    parser.add_argument("--no-validate", action="store_true", help="skip spec validation of request bodies")
    parser.add_argument("--api-key", help="accept only this key")
    parser.add_argument(
        "--reasoning-tokens",
        type=int,
        default=0,
        metavar="N",
        help="tokens a reasoning model (o-series, gpt-5) spends thinking, against max_output_tokens (default: 0)",
    )
    parser.add_argument(
        "--azure", action="store_true", help="Azure OpenAI's v1 API: /openai/v1 paths, the key in an api-key header"
    )
    parser.add_argument(
        "--no-hosted-store",
        action="store_true",
        help="no Files, Vector Stores or file_search (404 and 400, as vLLM, Ollama and LM Studio answer)",
    )
    parser.add_argument("--chat-only", action="store_true", help="serve /chat/completions only (no /responses)")
    parser.add_argument("--responses-only", action="store_true", help="serve /responses only (no /chat/completions)")
    parser.add_argument(
        "--batch-delay", type=float, default=0.0, help="seconds a batch takes from in_progress to completed"
    )
    parser.add_argument("--no-strict", action="store_true", help="take a schema but answer JSON in a code fence")
    args = parser.parse_args(argv)

    async def serve() -> None:
        server = OpenAITestServer(
            port=args.port,
            indexing_delay_s=args.indexing_delay,
            rpm=args.rpm,
            tpm=args.tpm,
            latency_s=args.latency,
            upload_latency_s=args.upload_latency,
            api_key=args.api_key,
            validate_requests=not args.no_validate,
            reasoning_tokens=args.reasoning_tokens,
            azure=args.azure,
            hosted_store=not (args.no_hosted_store or args.chat_only),
            responses_api=not args.chat_only,
            chat_api=not args.responses_only,
            strict=not args.no_strict,
            batch_delay_s=args.batch_delay,
        )
        await server.start()
        print(server.base_url, flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await server.stop()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass
    return 0
