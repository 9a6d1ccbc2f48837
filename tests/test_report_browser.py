"""The demo's report in a real browser — headless Chromium with scripts disabled: the decisive
step is marked in the timeline, and a citation link resolves to an element holding the cited run.

Needs Debian's `chromium` (installed by .ci/run); skipped with the reason when it is missing."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from refinery.app.demo import run_demo
from tests.helpers import PageDom

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it: apt-get install chromium)"
)
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-javascript",
]


def browser(page: Path, profile: Path, *extra: str) -> str:
    proc = subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *extra, page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


async def test_the_demo_report_works_in_chromium_with_scripts_off(tmp_path):
    demo = await run_demo(tmp_path / "demo")
    dom = PageDom(browser(demo.out / "report.html", tmp_path / "profile", "--dump-dom"))
    assert dom.scripts == 0
    [marked] = dom.decisive
    assert marked["data-run-id"] and "wf-row" in marked["class"]
    assert dom.links and all(link in dom.by_id for link in dom.links)  # every citation link resolves
    cited = dom.by_id[dom.links[0]]
    assert cited.get("data-run-id")  # …to an element that holds the cited run's id
    shot = tmp_path / "report.png"
    browser(
        demo.out / "report.html",
        tmp_path / "profile2",
        f"--screenshot={shot}",
        "--window-size=1280,1600",
        "--hide-scrollbars",
    )
    assert shot.stat().st_size > 10_000
