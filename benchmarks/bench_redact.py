"""Redaction stays linear on adversarial text: each catalogue rule's prefix (or field name)
repeated with no valid end, at 1 MB and 8 MB. Prints seconds per input and the 8 MB / 1 MB
ratio (linear: about 8; a quadratic rule would show about 64 and take minutes).

Run: `python benchmarks/bench_redact.py [--big-mb 8]`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from refinery.traces.redact import RedactionReport, redact_text  # noqa: E402

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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--big-mb", type=int, default=8)
    args = parser.parse_args()
    small, big = 1 << 20, args.big_mb << 20
    print(f"{'input':32} {'1 MB s':>8} {f'{args.big_mb} MB s':>8} {'ratio':>6}")
    worst = 0.0
    for name, unit in UNITS.items():
        t_small = timed(unit * (small // len(unit)))
        t_big = timed(unit * (big // len(unit)))
        ratio = t_big / max(t_small, 1e-6)
        worst = max(worst, ratio)
        print(f"{name:32} {t_small:8.3f} {t_big:8.3f} {ratio:6.1f}")
    print(f"worst ratio {worst:.1f} (linear: about {args.big_mb})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
