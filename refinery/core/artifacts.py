"""Writing artifacts so that a crash never leaves a half-written file behind.

Each write goes to a temporary file in the same directory and is moved into place with
`os.replace`, which is atomic on POSIX and Windows: a reader sees the old file or the new one.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from refinery.core.confined import read_text_nofollow


def private_dir(path: str | Path) -> Path:
    """`path` and any missing parent made owner-only (0700, whatever the umask): what refinery
    writes may hold trace text. Existing folders keep their mode (they are the user's)."""
    path = Path(path)
    missing = []
    while not path.exists() and path != path.parent:
        missing.append(path)
        path = path.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:  # made meanwhile by another writer
            continue
        os.chmod(folder, 0o700)  # mkdir's mode is masked by the umask; 0700 is never wider than asked
    return Path(path if not missing else missing[0])


def write_text_atomic(path: str | Path, text: str) -> Path:
    path = Path(path)
    private_dir(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json_atomic(path: str | Path, data: Any) -> Path:
    return write_text_atomic(path, json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False, default=str) + "\n")


def read_json(path: str | Path, *, follow: bool = True) -> Any | None:
    """The JSON in `path`, or None when the file is missing or unreadable. With `follow=False`
    a link in its place is refused (`LinkRefusedError`) rather than read through."""
    try:
        text = Path(path).read_text(encoding="utf-8") if follow else read_text_nofollow(path)
        return json.loads(text)
    except (OSError, ValueError):
        return None
