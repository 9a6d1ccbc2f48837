"""Traces in, citable files out: loaders for each export format, redaction, rendering."""

from refinery.traces.loader import detect_format, load_trace, load_traces
from refinery.traces.render import RenderOptions, render_trace_files

__all__ = ["RenderOptions", "detect_format", "load_trace", "load_traces", "render_trace_files"]
