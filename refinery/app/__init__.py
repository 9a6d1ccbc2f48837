"""What the applications (the command line, `batch`, the MCP server, the demo) share: one way to
analyse a trace into a folder (`analyze_into`).

Imported when first used (`__getattr__`): `refinery --help` passes through this package, and
`analyze_into` brings the analyst, the HTTP client and every model with it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["FolderAnalysis", "analyze_into"]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'refinery.app' has no attribute {name!r}")
    from refinery.app import folder_analysis

    value = getattr(folder_analysis, name)
    globals()[name] = value  # the next use is a plain attribute
    return value


if TYPE_CHECKING:
    from refinery.app.folder_analysis import FolderAnalysis, analyze_into
