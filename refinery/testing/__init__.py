"""Test helpers for refinery and for host applications that test their integration with it.

- `server.OpenAITestServer`: a local OpenAI-compatible server (files, vector stores,
  `/v1/responses` with `file_search`), a test double with a deterministic stand-in model;
- `faults`: rate limits and injectable faults for that server;
- `pytest_plugin`: the `openai_server` and `openai_env` fixtures;
- `openapi_spec`: validate request bodies against OpenAI's published OpenAPI document;
- `phoenix`: a real Arize Phoenix (`phoenix serve`) on free loopback ports, when it is installed.
See docs/testing.md.
"""
