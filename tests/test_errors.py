"""Errors as openai-python shapes them; what each means to the command line (exit code, advice)
lives in `refinery.app.exit_codes`, not on the exceptions."""

from __future__ import annotations

import pytest

from refinery import errors as e
from refinery.app.exit_codes import exit_code_for, hint_for
from refinery.app.inputs import InputFileError


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (e.InputFileError("x.json: no such file"), 2),
        (e.TraceFormatError("bad", source="t.json"), 2),
        (e.ArtifactsMismatchError("another trace"), 2),
        (e.UserInputError("needs a trace"), 2),
        (e.UnsupportedFileError("a.exe"), 2),
        (e.VectorStoreGoneError("vs_1", "expired"), 2),
        (e.StrictSchemaError(["root: not an object"]), 2),
        (e.ConfigurationError("no key"), 3),
        (e.AuthenticationError("bad key", status=401), 3),
        (e.PermissionDeniedError("no access", status=403), 3),
        (e.QuotaExceededError("quota", status=429), 3),
        (e.APITimeoutError("slow"), 3),
        (e.APIConnectionError("refused"), 3),
        (e.NotFoundError("Not Found — no such endpoint: check OPENAI_BASE_URL", status=404), 3),
        (e.NotFoundError("model gpt-9 not found", status=404), 4),
        (e.CanaryError("no"), 3),
        (e.RateLimitError("slow down", status=429), 4),
        (e.ServerError("boom", status=500), 4),
        (e.StageError("stage2", "bad output"), 4),
        (e.PromptError("missing values"), 4),
        (ValueError("not ours"), 4),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Exception) else str(v),
)
def test_exit_code_is_the_command_lines_reading_of_the_error(error, code):
    assert exit_code_for(error) == code


def test_input_file_error_lives_in_errors_and_is_still_importable_from_inputs():
    assert InputFileError is e.InputFileError and issubclass(InputFileError, e.RefineryError)


def test_connection_and_timeout_errors_are_api_errors_as_in_openai_python():
    assert issubclass(e.APIConnectionError, e.APIError) and issubclass(e.APITimeoutError, e.APIConnectionError)
    assert issubclass(e.RateLimitError, e.APIStatusError) and not issubclass(e.APIConnectionError, e.APIStatusError)


def test_library_errors_carry_no_command_line_advice_and_the_cli_adds_it():
    error = e.AuthenticationError("Incorrect API key provided", status=401)
    assert "refinery canary" not in str(error)
    assert "refinery canary" in (hint_for(error) or "")
    assert hint_for(e.ServerError("boom", status=500)) is None


def test_a_status_the_message_repeats_is_said_once_and_absent_fields_are_not_named():
    assert str(e.NotFoundError("404: Not Found", status=404)) == "HTTP 404: Not Found"
    assert str(e.AuthenticationError("bad key", status=401, type="invalid_request_error")) == (
        "HTTP 401: bad key (type=invalid_request_error)"
    )
