"""Reading the user's input files: expectations, prompt and eval files.

Errors name the file (and the field, for JSON) and say what was expected, because these files
are hand-written and the first run is usually where their mistakes show.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from refinery.core.models import DomainExpertExpectation, Trace
from refinery.errors import InputFileError

__all__ = ["InputFileError", "expectation_for", "load_expectation", "read_files", "read_text"]


MAX_INPUT_BYTES = 10 << 20  # an expectation, prompt or eval file: text a person wrote, not a dump


_SURROGATE = re.compile("[\ud800-\udfff]")


def without_surrogates(text: str) -> str:
    """`text` with lone surrogates (valid in JSON's `\\ud800`, what JavaScript leaves when it cuts
    an emoji; not encodable as UTF-8) replaced by U+FFFD, one character for one."""
    return _SURROGATE.sub("\ufffd", text) if _SURROGATE.search(text) else text


def read_text(path: str | Path) -> str:
    """A small text file a person gave (expectation, prompt, eval): a regular file (a pipe or a
    device would hang or never end), at most `MAX_INPUT_BYTES` as read (not as `st_size` says:
    `/proc` files say 0), UTF-8."""
    p = Path(path)
    if p.exists() and not p.is_dir() and not p.is_file():
        raise InputFileError(f"{p}: not a regular file (a pipe or a device); give a file")
    try:
        with p.open("rb") as f:
            data = f.read(MAX_INPUT_BYTES + 1)  # bounded: what the file holds, whatever its size says
    except FileNotFoundError:
        raise InputFileError(f"{p}: no such file") from None
    except IsADirectoryError:
        raise InputFileError(f"{p}: is a directory, expected a file") from None
    if len(data) > MAX_INPUT_BYTES:
        raise InputFileError(
            f"{p}: more than {MAX_INPUT_BYTES} bytes; an expectation, prompt or eval file is at most that"
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputFileError(f"{p}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def read_files(paths: Sequence[str | Path] | None) -> dict[str, str]:
    """File name → text, for `--prompts` / `--evals`; two files with one name are refused."""
    out: dict[str, str] = {}
    for path in paths or []:
        name = Path(path).name
        if name in out:
            raise InputFileError(f"{path}: another file is also named {name!r}; file names must be unique")
        out[name] = without_surrogates(read_text(path))
    return out


def load_expectation(path: str | Path) -> DomainExpertExpectation:
    """A JSON object with the `DomainExpertExpectation` fields, or plain text (the description)."""
    text = read_text(path)
    if Path(path).suffix.lower() == ".json" or text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except RecursionError:
            raise InputFileError(
                f"{path}: nested too deeply to read; expected a JSON object with 'description'"
            ) from None
        except ValueError as exc:  # a number of more than 4,300 digits too
            raise InputFileError(f"{path}: not JSON ({_one_line(exc)})") from None
        if not isinstance(data, dict):
            raise InputFileError(f"{path}: expected a JSON object with 'description', got {type(data).__name__}")
        try:
            expectation = DomainExpertExpectation.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or "(root)"
            raise InputFileError(f"{path}: field {field!r}: {_one_line(first['msg'])}") from None
        except RecursionError:
            raise InputFileError(f"{path}: nested too deeply; expected a JSON object with 'description'") from None
        return _clean(expectation)
    if not text.strip():
        raise InputFileError(f"{path}: empty; describe what the agent should have done")
    return DomainExpertExpectation(description=without_surrogates(text.strip()))


def _one_line(exc: object) -> str:
    return " ".join(str(exc).split())[:300]


def _clean(expectation: DomainExpertExpectation) -> DomainExpertExpectation:
    """The expectation with lone surrogates replaced in every text field (see `without_surrogates`)."""
    data = expectation.model_dump()
    cleaned = {
        k: without_surrogates(v)
        if isinstance(v, str)
        else [without_surrogates(x) if isinstance(x, str) else x for x in v]
        if isinstance(v, list)
        else v
        for k, v in data.items()
    }
    return expectation if cleaned == data else DomainExpertExpectation.model_validate(cleaned)


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
