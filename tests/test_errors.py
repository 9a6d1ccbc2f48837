"""Each error class carries the exit code it means; the CLI reads it from there."""

from __future__ import annotations

import pytest

from refinery import errors as e
from refinery.cli import exit_code_for
from refinery.inputs import InputFileError


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
        (e.CanaryError("no"), 3),
        (e.RateLimitError("slow down", status=429), 4),
        (e.ServerError("boom", status=500), 4),
        (e.StageError("stage2", "bad output"), 4),
        (e.PromptError("missing values"), 4),
        (ValueError("not ours"), 4),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Exception) else str(v),
)
def test_exit_code_comes_from_the_error(error, code):
    assert exit_code_for(error) == code


def test_input_file_error_lives_in_errors_and_is_still_importable_from_inputs():
    assert InputFileError is e.InputFileError and issubclass(InputFileError, e.RefineryError)
