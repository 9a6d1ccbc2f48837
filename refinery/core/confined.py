"""Reading and writing refinery's own files without following a link planted in their place.

Why: a folder refinery writes into may be shared (the MCP server's `--root`, a team's results
folder). Checking the folder a caller names is not enough when the names refinery adds to it are
followed: a `report.md` linked to `/etc/passwd` was read back, a linked `.refinery.lock` truncated
a file outside the folder, a linked `files/` received the rendered trace. So:

- the files refinery opens in place (the lock, the upload log, what it reads back) are opened
  with `O_NOFOLLOW`, and must be regular files;
- the folders it adds (`files/`, `stage1_groups/`) must be real folders, not links;
- whole-file writes go through `artifacts.write_text_atomic`, whose `os.replace` replaces a
  link rather than writing through it;
- a path a caller gives (`within`) is resolved (every link in it followed) and must lie inside
  one of the roots.

The last component is what is never followed: the folder a user names may itself be a link
(`--out ~/results` on another disk) — only the MCP server, which has roots, resolves it first.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Sequence
from pathlib import Path

from refinery.errors import UserInputError

__all__ = [
    "LinkRefusedError",
    "SystemFolderError",
    "open_nofollow",
    "own_dir",
    "read_text_nofollow",
    "refuse_links",
    "refuse_system_folder",
    "within",
]

# Folders an output folder may never be: the system's own (as root, `--out /` wrote artifacts
# into `/`), refused themselves and anything under them ...
SYSTEM_TREES = (
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/proc",
    "/sbin",
    "/sys",
    "/usr",
)
# ... and these only themselves (a folder under them is a user's: /home/me/out, /var/lib/ci/out)
SYSTEM_FOLDERS = ("/", "/home", "/root", "/run", "/srv", "/tmp", "/var", "/var/tmp", "/opt", "/mnt", "/media")
MAC_FOLDERS = ("/Users", "/System", "/Library", "/Applications", "/private", "/private/tmp", "/private/var")


class LinkRefusedError(UserInputError):
    """A path refinery reads or writes is a symbolic link, or resolves outside the allowed folders."""


def _refused(path: Path, what: str = "a symbolic link") -> LinkRefusedError:
    return LinkRefusedError(
        f"{path}: {what}; refinery does not follow links where it reads or writes its own files "
        "(remove it, or use another folder)"
    )


def open_nofollow(path: str | Path, flags: int, mode: int = 0o600) -> int:
    """`os.open` that refuses a link as the last component (and anything but a regular file)."""
    path = Path(path)
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _refused(path) from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise _refused(path, "not a regular file")
    return fd


def read_text_nofollow(path: str | Path) -> str:
    """The text of a regular file, read through a descriptor opened without following a link."""
    with os.fdopen(open_nofollow(path, os.O_RDONLY), encoding="utf-8") as f:
        return f.read()


def own_dir(path: str | Path) -> Path:
    """A folder refinery adds inside an output folder (`files/`): made owner-only when missing,
    refused when a link or not a folder."""
    path = Path(path)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        pass
    mode = os.lstat(path).st_mode
    if stat.S_ISLNK(mode):
        raise _refused(path)
    if not stat.S_ISDIR(mode):
        raise _refused(path, "not a folder")
    return path


def refuse_links(folder: str | Path, names: Sequence[str]) -> None:
    """Refuse, before anything is read or written, a folder where one of refinery's own names is a link."""
    for name in names:
        path = Path(folder) / name
        if path.is_symlink():
            raise _refused(path)


def within(path: str | Path, roots: Sequence[Path]) -> Path:
    """`path` (relative to the first root when relative) with every link resolved, when it lies
    inside one of `roots`; else a refusal naming the roots."""
    given = Path(path).expanduser()
    resolved = (given if given.is_absolute() else roots[0] / given).resolve()
    if not any(resolved == r or r in resolved.parents for r in roots):
        raise LinkRefusedError(
            f"{path}: outside the folders this server was started with ({', '.join(map(str, roots))})"
        )
    return resolved


class SystemFolderError(UserInputError):
    """An output folder that is the system's own (`/`, `/etc`, the home folder itself, …)."""


def refuse_system_folder(path: str | Path, what: str = "--out") -> Path:
    """`path` resolved, unless it is `/`, a system folder (or inside /etc, /usr, /bin, /boot,
    /dev, /proc, /sys, …) or the home folder itself: refinery writes a dozen files into its
    output folder, and `--fresh` removes them."""
    resolved = Path(path).expanduser().resolve()
    text = str(resolved)
    inside = any(text == t or text.startswith(t + "/") for t in SYSTEM_TREES)
    if inside or text in SYSTEM_FOLDERS or text in MAC_FOLDERS or resolved == Path.home().resolve():
        raise SystemFolderError(
            f"{what} {path}: a system folder{'' if str(path) == text else f' ({text})'}; "
            "give a folder of your own (e.g. ./refinery-out)"
        )
    return resolved
