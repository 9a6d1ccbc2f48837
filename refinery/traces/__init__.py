"""Traces in, citable files out: loaders for each export format, redaction, rendering."""

from refinery.traces.render import RenderOptions, render_trace_files

__all__ = ["RenderOptions", "render_trace_files"]
