"""What the applications (the command line, `batch`, the MCP server, the demo) share: one way to
analyse a trace into a folder (`analyze_into`)."""

from refinery.app.folder_analysis import FolderAnalysis, analyze_into

__all__ = ["FolderAnalysis", "analyze_into"]
