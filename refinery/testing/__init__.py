"""Test helpers for refinery and for host applications that test their integration with it.

- `openapi_spec`: validate request bodies against OpenAI's published OpenAPI document.
"""
