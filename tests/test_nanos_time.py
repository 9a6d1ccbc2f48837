"""OTLP's nanosecond times read by `nanos_time` are exactly the datetimes `parse_time` makes of them,
and every other value is left to `parse_time` (None), so times of other shapes, and bad ones, are
read and refused as before."""

from __future__ import annotations

import random

from refinery.traces.common import nanos_time, parse_time


def _values(rng: random.Random) -> list:
    out: list = []
    for _ in range(20000):
        digits = "".join(rng.choice("0123456789") for _ in range(rng.choice([17, 18, 19, 19, 19, 20])))
        n = int(digits)
        out += [digits, n, -n, " " + digits, digits + "\n", "-" + digits, digits.replace("1", "١")]
    out += [10**17, 10**17 + 1, 10**19 - 1, 10**19, True, 1.7e18, "1700000000000000000", "0" * 19, None, ""]
    return out


def test_a_nanosecond_time_is_the_datetime_parse_time_makes_and_anything_else_is_left_to_it():
    rng = random.Random(37)
    quick = 0
    for value in _values(rng):
        made = nanos_time(value)
        if made is not None:
            quick += 1
            assert made == parse_time(value) and made.tzinfo == parse_time(value).tzinfo, value
            assert made.isoformat() == parse_time(value).isoformat()
    assert quick > 20000  # the 19-digit strings and their ints


def test_what_nanos_time_leaves_is_not_an_otlp_nanosecond_count():
    for value in ["0" * 19, "0170000000000000000", " 1700000000000000000", "1" * 20, "١" * 19, 10**17, 10**19, True]:
        assert nanos_time(value) is None
