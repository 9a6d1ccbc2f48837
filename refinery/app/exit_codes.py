"""What an error means to a command line: its exit code, and the advice printed with it.

Why here and not on the exceptions: a library's errors say what went wrong; what a user should
type next (`refinery canary`, `--fresh`) and which number a shell sees are the command line's
words. One table, read by the CLI, `batch` and `eval`.

Exit codes: 0 done · 2 bad usage or input · 3 access (key, quota, connection, configuration) ·
4 the analysis failed · 5 some traces failed, the others were analysed (`batch`, `eval`) · 130
interrupted. A command that runs many (`batch`, `eval`) exits 0 when every trace was analysed, 5
when some failed, and when none could be analysed the code of their one cause (2, 3), else 4.
"""

from __future__ import annotations

from refinery.errors import (
    APIConnectionError,
    AuthenticationError,
    CanaryError,
    ConfigurationError,
    NotFoundError,
    PermissionDeniedError,
    QuotaExceededError,
    RequestBuildError,
    TraceFormatError,
    UnsupportedFileError,
    UserInputError,
    VectorStoreGoneError,
)

__all__ = [
    "EXIT_ACCESS",
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_SOME_FAILED",
    "EXIT_USAGE",
    "exit_code_for",
    "exit_code_of_many",
    "hint_for",
]

EXIT_OK, EXIT_USAGE, EXIT_ACCESS, EXIT_FAILED, EXIT_SOME_FAILED = 0, 2, 3, 4, 5

CANARY_HINT = "run `refinery canary` to check the key, base URL and model"

_CODES: dict[type[BaseException], int] = {
    UserInputError: EXIT_USAGE,
    RequestBuildError: EXIT_USAGE,
    UnsupportedFileError: EXIT_USAGE,
    VectorStoreGoneError: EXIT_USAGE,
    TraceFormatError: EXIT_USAGE,
    ConfigurationError: EXIT_ACCESS,
    AuthenticationError: EXIT_ACCESS,
    PermissionDeniedError: EXIT_ACCESS,
    QuotaExceededError: EXIT_ACCESS,
    APIConnectionError: EXIT_ACCESS,
    CanaryError: EXIT_ACCESS,
}
# A trace platform that cannot be reached is a connection problem, as the API's is. Named by its module
# rather than imported: `refinery --help` reads this table through cli_args and must not load the HTTP
# client `traces.sources` brings; an error of that class exists only once that module is loaded.
_BY_MODULE: dict[tuple[str, str], int] = {("refinery.traces.sources", "SourceConnectionError"): EXIT_ACCESS}

_HINTS: dict[type[BaseException], str] = {
    AuthenticationError: CANARY_HINT,
    PermissionDeniedError: CANARY_HINT,
    APIConnectionError: CANARY_HINT,
}


def _nearest(
    table: dict[type[BaseException], object], exc: BaseException, by_name: dict[tuple[str, str], int] | None = None
) -> object | None:
    for cls in type(exc).__mro__:  # the most specific class the table names
        if cls in table:
            return table[cls]
        if by_name and (cls.__module__, cls.__qualname__) in by_name:
            return by_name[cls.__module__, cls.__qualname__]
    return None


def exit_code_for(exc: BaseException) -> int:
    """The exit code an error means (anything not named: the analysis failed)."""
    if isinstance(exc, NotFoundError) and "no such endpoint" in str(exc):
        return EXIT_ACCESS  # a base URL that is off is configuration, in every command
    code = _nearest(_CODES, exc, _BY_MODULE)  # type: ignore[arg-type]
    return code if isinstance(code, int) else EXIT_FAILED


def exit_code_of_many(done: int, failed: list[int | None]) -> int:
    """A command that runs many: 0 when none failed, 5 when some did and others were analysed; when
    none could be analysed, the code of their one cause (2 input, 3 access), else 4."""
    if not failed:
        return EXIT_OK
    if done:
        return EXIT_SOME_FAILED
    causes = {code or EXIT_FAILED for code in failed}
    return causes.pop() if len(causes) == 1 else EXIT_FAILED


def hint_for(exc: BaseException) -> str | None:
    """What to do next, for the errors where the command line knows (None: the message says it)."""
    hint = _nearest(_HINTS, exc)  # type: ignore[arg-type]
    return hint if isinstance(hint, str) else None
