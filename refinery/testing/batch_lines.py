"""A batch's input file checked as the Batch API checks it, before any line runs.

Why apart: these are the API's rules for the file (what makes a whole batch `failed`, each error
naming its line and the API's code), not the batch's life on the clock. The codes are those the
API reports: `empty_file`, `too_many_tasks`, `invalid_json_line`, `duplicate_custom_id`,
`url_mismatch`, `model_mismatch` (one model a file, on OpenAI as on Azure's Global Batch, where
the model is the deployment), and for a line missing a field or with a wrong one,
`missing_required_parameter`, `invalid_custom_id`, `invalid_method`, `invalid_body`.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["MAX_BYTES", "MAX_REQUESTS", "problem", "validate_lines"]

MAX_REQUESTS = 50_000
MAX_BYTES = 200 * 1024 * 1024


def problem(code: str, message: str, line: int | None = None, param: str | None = None) -> dict[str, Any]:
    return {"code": code, "message": message, "param": param, "line": line}


def validate_lines(
    data: bytes, endpoint: str, max_requests: int = MAX_REQUESTS, max_bytes: int = MAX_BYTES
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(the requests, the validation errors) of an input file, as the API checks it."""
    if not data.strip():
        return [], [problem("empty_file", "The batch input file is empty.")]
    if len(data) > max_bytes:
        return [], [problem("file_too_large", f"The batch input file is larger than {max_bytes} bytes.")]
    raw_lines = [(n, line) for n, line in enumerate(data.decode("utf-8", "replace").split("\n"), 1) if line.strip()]
    if len(raw_lines) > max_requests:
        return [], [problem("too_many_tasks", f"The batch holds {len(raw_lines)} requests; at most {max_requests}.")]
    lines: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    seen: set[str] = set()
    model: str | None = None
    for n, text in raw_lines:
        try:
            obj = json.loads(text)
        except ValueError:
            obj = None
        if not isinstance(obj, dict):
            errors.append(problem("invalid_json_line", "This line is not parseable as valid JSON.", n))
            continue
        missing = [k for k in ("custom_id", "method", "url", "body") if k not in obj]
        if missing:
            errors.append(
                problem("missing_required_parameter", f"Missing required parameter: '{missing[0]}'.", n, missing[0])
            )
            continue
        cid, body = obj["custom_id"], obj["body"]
        if not isinstance(cid, str) or not cid:
            errors.append(problem("invalid_custom_id", "custom_id must be a non-empty string.", n, "custom_id"))
        elif cid in seen:
            errors.append(
                problem(
                    "duplicate_custom_id",
                    "The custom_id for this request is a duplicate of another request. "
                    "The custom_id parameter must be unique for each individual request in a batch.",
                    n,
                    "custom_id",
                )
            )
        elif obj["method"] != "POST":
            errors.append(problem("invalid_method", f"Invalid method {obj['method']!r}: only POST.", n, "method"))
        elif obj["url"] != endpoint:
            errors.append(
                problem("url_mismatch", f"The url {obj['url']!r} does not match the batch's endpoint {endpoint}.", n)
            )
        elif not isinstance(body, dict):
            errors.append(problem("invalid_body", "body must be a JSON object.", n, "body"))
        elif model is not None and body.get("model") != model:
            errors.append(
                problem("model_mismatch", f"The model {body.get('model')!r} differs from this file's {model!r}.", n)
            )
        else:
            model = model if model is not None else body.get("model")
            seen.add(cid)
            lines.append(obj)
    return lines, errors
