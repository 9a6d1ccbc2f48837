"""The README's and docs/traces-and-cli.md's command tables name every command the parser has (and
no other), and the README documents every MCP tool's arguments."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from refinery.app.cli_args import EXIT_CODES_HELP, build_parser

ROOT = Path(__file__).resolve().parents[1]


def parser_commands() -> set[str]:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return set(sub.choices)


def table_commands(text: str) -> set[str]:
    """The commands the rows of a Markdown command table name (`| `refinery NAME …` | …)."""
    return set(re.findall(r"^\| `refinery ([a-z-]+)", text, re.M))


@pytest.mark.parametrize("page", ["README.md", "docs/traces-and-cli.md"])
def test_the_command_table_names_every_command_of_the_parser(page):
    assert table_commands((ROOT / page).read_text()) == parser_commands()


@pytest.mark.parametrize("page", ["README.md", "docs/traces-and-cli.md"])
def test_the_pages_list_the_exit_codes_the_help_lists(page):
    text = (ROOT / page).read_text()
    codes = re.findall(r"^  (\d+) ", EXIT_CODES_HELP, re.M)
    assert codes == ["0", "2", "3", "4", "5", "130"]
    assert all(re.search(rf"`?{c}`?\s+(done|bad|auth|the analysis|some|interrupted)", text) for c in codes), page


def test_the_readme_documents_each_mcp_tools_arguments():
    pytest.importorskip("mcp")
    from refinery.app.mcp_server import build_server

    tools = asyncio.run(build_server([ROOT]).list_tools())
    readme = (ROOT / "README.md").read_text()
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `([a-z_]+)` \| (.*?) \|", readme, re.M)}
    for tool in tools:
        schema = getattr(tool, "inputSchema", None) or tool.input_schema
        arguments = set(schema.get("properties", {})) - {"ctx"}
        assert tool.name in rows, tool.name
        assert {a for a in arguments if f"`{a}`" in rows[tool.name]} == arguments, tool.name
