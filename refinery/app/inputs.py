"""Reading the user's input files: expectations, prompt and eval files.

Errors name the file (and the field, for JSON) and say what was expected, because these files
are hand-written and the first run is usually where their mistakes show.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from refinery.core.models import DomainExpertExpectation, Trace
from refinery.errors import InputFileError

__all__ = ["InputFileError", "expectation_for", "load_expectation", "read_files", "read_text"]


MAX_INPUT_BYTES = 10 << 20  # an expectation, prompt or eval file: text a person wrote, not a dump


def read_text(path: str | Path) -> str:
    """A small text file a person gave (expectation, prompt, eval): a regular file (a pipe or a
    device would hang or never end), at most `MAX_INPUT_BYTES`, UTF-8."""
    p = Path(path)
    if p.exists() and not p.is_dir() and not p.is_file():
        raise InputFileError(f"{p}: not a regular file (a pipe or a device); give a file")
    if p.is_file() and p.stat().st_size > MAX_INPUT_BYTES:
        raise InputFileError(
            f"{p}: {p.stat().st_size} bytes; an expectation, prompt or eval file is at most {MAX_INPUT_BYTES}"
        )
    try:
        return p.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputFileError(f"{p}: no such file") from None
    except IsADirectoryError:
        raise InputFileError(f"{p}: is a directory, expected a file") from None
    except UnicodeDecodeError as exc:
        raise InputFileError(f"{p}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def read_files(paths: Sequence[str | Path] | None) -> dict[str, str]:
    """File name → text, for `--prompts` / `--evals`; two files with one name are refused."""
    out: dict[str, str] = {}
    for path in paths or []:
        name = Path(path).name
        if name in out:
            raise InputFileError(f"{path}: another file is also named {name!r}; file names must be unique")
        out[name] = read_text(path)
    return out


def load_expectation(path: str | Path) -> DomainExpertExpectation:
    """A JSON object with the `DomainExpertExpectation` fields, or plain text (the description)."""
    text = read_text(path)
    if Path(path).suffix.lower() == ".json" or text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise InputFileError(f"{path}: not JSON ({exc})") from None
        if not isinstance(data, dict):
            raise InputFileError(f"{path}: expected a JSON object with 'description', got {type(data).__name__}")
        try:
            return DomainExpertExpectation.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or "(root)"
            raise InputFileError(f"{path}: field {field!r}: {first['msg']}") from None
    if not text.strip():
        raise InputFileError(f"{path}: empty; describe what the agent should have done")
    return DomainExpertExpectation(description=text.strip())


def expectation_for(path: str | Path | None, trace: Trace | None) -> DomainExpertExpectation:
    """The expectation from `--expect`, or, without one, from the task the trace itself carries
    (a step log's `question` / `task`): the agent was expected to accomplish that task.

    Why a default: benchmark logs and many agent exports state their task, and "it should have
    done what it was asked" is the expectation a user would otherwise type by hand.
    """
    if path is not None:
        return load_expectation(path)
    task = trace.metadata.get("task") if trace is not None else None
    if not task:
        raise InputFileError(
            "no expectation: give --expect FILE (in a batch folder, or <name>.expect.json beside the trace); "
            "this trace states no task to derive one from"
        )
    expected = trace.metadata.get("expected_output") if trace is not None else None
    return DomainExpertExpectation(
        description="The agent accomplishes the task it was given, correctly and completely. The task: "
        f"{str(task).strip()}",
        expected_output=str(expected) if expected else None,  # an eval sample's target
    )
