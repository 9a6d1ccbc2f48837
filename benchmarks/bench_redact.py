"""Redaction stays linear on adversarial text: each catalogue rule's prefix (or field name)
repeated with no valid end, at 1 MB and 8 MB. Prints seconds per input and the 8 MB / 1 MB
ratio (linear: about 8; a quadratic rule would show about 64 and take minutes).

With `--real`, the real material instead (../shared/eval-data, TRAIL and Who&When): every run's
raw JSON redacted, and every trace rendered as uploaded (`upload_files_for`) redacted and not,
each with the catalogue's rules tried only where their matches can start (`redact_leads`) and
without that (each rule's regex over the whole text), in turn, best of `--repeat`; the texts
redacted both ways are checked equal. `--without-leads`: the adversarial inputs searched whole.

Run: `python benchmarks/bench_redact.py [--big-mb 8] [--without-leads] [--real [--repeat 3]]`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from refinery.testing.openapi_spec import find_shared  # noqa: E402
from refinery.traces import load_trace, redact_leads  # noqa: E402
from refinery.traces.redact import RedactionReport, redact_text  # noqa: E402
from refinery.traces.spool import upload_files_for  # noqa: E402

# one unit of each adversarial shape: a prefix or field name that starts a match, then a body
# that never completes it (or completes it only at the very end)
UNITS = {
    "jwt prefixes": "eyJ",
    "jwt no second dot": "eyJabcdefghijkl.",
    "github prefixes": "ghp_",
    "token bodies, no end": "glpat-x",
    "password fields": "password: ",
    "quoted field, no close": 'secret_key="\\\\',
    "pem begin, no end": "-----BEGIN RSA PRIVATE KEY-----\n",
    "url schemes": "a+b://u:",
    "cookie headers": "Cookie: ",
    "kubernetes manifests": "kind: Secret\ndata:\n",
    "base64 run": "QUJDRE",
    "marks between key and value": "token\ue000\ue001: \ue000",
    "plain prose": "the quick brown fox jumps over the lazy dog ",
}


def timed(text: str) -> float:
    start = time.perf_counter()
    redact_text(text, RedactionReport())
    return time.perf_counter() - start


@contextmanager
def leads(on: bool) -> Iterator[None]:
    """The catalogue's rules tried where their matches can start (`on`), or each searched whole."""
    real = redact_leads.leads_of
    if not on:
        redact_leads.leads_of = lambda pattern: None  # type: ignore[assignment]
    try:
        yield
    finally:
        redact_leads.leads_of = real


def run_texts(eval_data: Path) -> list[str]:
    """Each run's raw JSON: a Who&When step, a TRAIL span without its children."""
    texts = []
    for path in sorted((eval_data / "who-and-when").glob("*/*.json")):
        texts += [json.dumps(step, ensure_ascii=False) for step in json.loads(path.read_text())["history"]]

    def walk(span: dict[str, Any]) -> None:
        texts.append(json.dumps({k: v for k, v in span.items() if k != "child_spans"}, ensure_ascii=False))
        for child in span.get("child_spans") or []:
            walk(child)

    for path in sorted((eval_data / "trail" / "traces").glob("*/*.json")):
        for span in json.loads(path.read_text()).get("spans") or []:
            walk(span)
    return texts


def best(repeat: int, work: Callable[[], Any]) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeat):
        start = time.process_time()
        out = work()
        times.append(time.process_time() - start)
    return min(times), out


def real(repeat: int) -> int:
    shared = find_shared(Path(__file__))
    if shared is None or not (shared / "eval-data").is_dir():
        print("bench_redact --real: no ../shared/eval-data")
        return 1
    eval_data = shared / "eval-data"
    texts = run_texts(eval_data)
    traces = [load_trace(p) for p in sorted(eval_data.glob("trail/traces/*/*.json"))]
    traces += [load_trace(p) for p in sorted(eval_data.glob("who-and-when/*/*.json"))]

    def rendered(redacting: bool) -> Callable[[], int]:
        def work() -> int:
            size = 0
            for trace in traces:
                spool, _ = upload_files_for(trace, redact=redacting)
                size += sum(len(spool[i][1]) for i in range(len(spool)))
                spool.close()
            return size

        return work

    print(
        f"{len(texts)} runs, {sum(map(len, texts)) / 1e6:.1f} M characters; {len(traces)} traces; "
        f"CPU s, best of {repeat}"
    )
    print(f"{'work':44} {'whole':>8} {'leads':>8} {'ratio':>6}")
    figures = {}
    for name, work in (
        ("every run's raw JSON redacted", lambda: [redact_text(t) for t in texts]),
        ("the traces rendered as uploaded, redacted", rendered(True)),
        ("the traces rendered as uploaded, not redacted", rendered(False)),
    ):
        out = {}
        for on in (False, True):  # in turn: the machine's drift falls on both
            with leads(on):
                figures[name, on], out[on] = best(repeat, work)
        assert out[False] == out[True], f"{name}: not the same text with and without leads"
        whole, led = figures[name, False], figures[name, True]
        print(f"{name:44} {whole:8.2f} {led:8.2f} {led / whole:6.2f}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--big-mb", type=int, default=8)
    parser.add_argument("--without-leads", action="store_true", help="each rule searched whole (the old way)")
    parser.add_argument("--real", action="store_true", help="the real runs of ../shared/eval-data instead")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if args.real:
        return real(args.repeat)
    with leads(not args.without_leads):
        return adversarial(args.big_mb)


def adversarial(big_mb: int) -> int:
    small, big = 1 << 20, big_mb << 20
    print(f"{'input':32} {'1 MB s':>8} {f'{big_mb} MB s':>8} {'ratio':>6}")
    worst = 0.0
    for name, unit in UNITS.items():
        t_small = timed(unit * (small // len(unit)))
        t_big = timed(unit * (big // len(unit)))
        ratio = t_big / max(t_small, 1e-6)
        worst = max(worst, ratio)
        print(f"{name:32} {t_small:8.3f} {t_big:8.3f} {ratio:6.1f}")
    print(f"worst ratio {worst:.1f} (linear: about {big_mb})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
