"""One digest of what the model would be shown for every real trace in `../shared`: each trace's
rendered files (names and bytes) and every request body `refinery plan` builds for it.

Why: a change meant to touch one format (or none) must leave the renderings of all the others
byte-identical; comparing this digest before and after says so in one line. Traces that do not
load are listed (their error text is part of the digest too).

Run: `python benchmarks/fingerprint_real.py [--shared PATH] [--each]`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from refinery.analysis.plan import planned_requests  # noqa: E402
from refinery.analysis.staged_failure_analyst import StagedFailureAnalyst  # noqa: E402
from refinery.app.inputs import expectation_for  # noqa: E402
from refinery.core.models import DomainExpertExpectation  # noqa: E402
from refinery.errors import RefineryError  # noqa: E402
from refinery.testing.openapi_spec import find_shared  # noqa: E402
from refinery.traces import load_trace  # noqa: E402


def real_traces(shared: Path) -> list[Path]:
    """Every trace file of the samples and both benchmarks (the labels are not traces)."""
    roots = [shared / "trace-samples", shared / "eval-data" / "trail" / "traces", shared / "eval-data" / "who-and-when"]
    return sorted(p for r in roots if r.is_dir() for p in r.rglob("*.json"))


def fingerprint(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        trace = load_trace(path)
    except RefineryError as exc:
        return hashlib.sha256(f"error: {exc}".encode()).hexdigest()
    analyst = StagedFailureAnalyst()
    try:
        expectation = expectation_for(None, trace)
    except RefineryError:  # a trace that states no task: one fixed expectation
        expectation = DomainExpertExpectation(description="The agent accomplishes what it was asked.")
    files = analyst.render(trace, expectation)
    for name, text in files:
        digest.update(name.encode() + b"\0" + text.encode() + b"\0")
    for name, body in planned_requests(analyst, trace, files, expectation):
        digest.update(name.encode() + b"\0" + json.dumps(body, sort_keys=True).encode() + b"\0")
    return digest.hexdigest()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=None)
    parser.add_argument("--each", action="store_true", help="print each trace's digest too")
    args = parser.parse_args()
    shared = args.shared or find_shared()
    if shared is None:
        print("no ../shared beside the project: nothing to fingerprint")
        return 0
    overall = hashlib.sha256()
    paths = real_traces(Path(shared))
    for path in paths:
        one = fingerprint(path)
        overall.update(str(path.relative_to(shared)).encode() + one.encode())
        if args.each:
            print(one[:16], path.relative_to(shared))
    print(f"{len(paths)} real traces; digest {overall.hexdigest()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
