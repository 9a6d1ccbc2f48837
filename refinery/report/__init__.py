"""A readable report of one analysis (Markdown and a self-contained HTML page), and the batch
summary page. Both report formats come from one gathered view (`gather`), so they cannot
disagree."""

from refinery.report.html import render_html
from refinery.report.markdown import render_markdown
from refinery.report.view import Cite, ReportView, RunRow, citation_resolver, gather

__all__ = ["Cite", "ReportView", "RunRow", "citation_resolver", "gather", "render_html", "render_markdown"]
