"""Make docs/img/report-demo.png from the current demo: `python docs/make_screenshot.py`.

Runs `refinery demo` (the local test server and its stand-in model: no key, no network) into a
temporary folder and photographs its report.html with headless Chromium (Debian's `chromium`),
scripts off, at 1280 px wide — so the picture in the docs is always what the demo now shows.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from refinery.app.demo import run_demo

OUT = Path(__file__).resolve().parent / "img" / "report-demo.png"


def main() -> int:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("chromium is not installed (apt-get install chromium)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        demo = asyncio.run(run_demo(Path(tmp) / "demo"))
        subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-javascript",
                "--no-first-run",
                "--disable-background-networking",
                f"--user-data-dir={Path(tmp) / 'profile'}",
                f"--screenshot={OUT}",
                "--window-size=1280,1400",
                "--hide-scrollbars",
                (demo.out / "report.html").as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
