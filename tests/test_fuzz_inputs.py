"""Fuzzed inputs end in one line, never a traceback: real traces from `../shared` mutated at
random (a node replaced by a value of another type), and documents of each format's shape with
values of the wrong types. Every failure is a `RefineryError` whose message is one line; what
loads renders. A fixed seed and a bounded count, so the run is the same each time."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from refinery.app.cli import main
from refinery.errors import RefineryError
from refinery.testing.openapi_spec import find_shared
from refinery.traces.loader import load_traces
from refinery.traces.spool import upload_files_for

SEED = 36
SHARED = find_shared()
SAMPLES = sorted(p for p in (SHARED / "trace-samples").rglob("*.json") if p.stat().st_size < 150_000) if SHARED else []
WRONG: list[Any] = [5, -1, 2.5, "x", "\ud800", "", None, True, [], {}, ["x"], {"a": 5}, [5, None], 10**50]


def _nodes(value: Any, path: tuple = ()) -> list[tuple]:
    """Every (container path, key) in `value`."""
    out: list[tuple] = []
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for k, v in items:
        out.append((*path, k))
        out.extend(_nodes(v, (*path, k)))
    return out


def mutated(data: Any, rng: random.Random, count: int) -> Any:
    """`data` with `count` nodes replaced by values of other types."""
    data = json.loads(json.dumps(data))
    for _ in range(count):
        nodes = _nodes(data)
        if not nodes:
            return json.loads(json.dumps(rng.choice(WRONG)))
        *parent, key = rng.choice(nodes)
        holder = data
        for k in parent:
            holder = holder[k]
        holder[key] = json.loads(json.dumps(rng.choice(WRONG)))  # a copy: never one object in two places
    return data


def loads_or_says_one_line(path: Path) -> None:
    """Loading (and rendering what loads) either works or raises a one-line `RefineryError`."""
    try:
        for trace in load_traces(path):
            upload_files_for(trace)
    except RefineryError as exc:
        assert "\n" not in str(exc) and str(exc)


@pytest.mark.skipif(not SAMPLES, reason="no ../shared trace samples")
def test_mutated_real_traces_load_or_fail_on_one_line(tmp_path):
    rng = random.Random(SEED)
    for i in range(120):
        source = rng.choice(SAMPLES)
        data = json.loads(source.read_text())
        path = tmp_path / f"m{i}_{source.name}"
        path.write_text(json.dumps(mutated(data, rng, rng.randint(1, 4))))
        loads_or_says_one_line(path)


# the skeleton of each format (`fixtures/fuzz_shapes.json`), every node to be replaced by a value of some type
SHAPES: dict[str, Any] = json.loads((Path(__file__).parent / "fixtures" / "fuzz_shapes.json").read_text())


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_each_formats_shape_with_wrong_types_loads_or_fails_on_one_line(tmp_path, shape):
    rng = random.Random(f"{SEED}-{shape}")
    for i in range(40):
        path = tmp_path / f"{shape}_{i}.json"
        path.write_text(json.dumps(mutated(SHAPES[shape], rng, rng.randint(1, 3))))
        loads_or_says_one_line(path)


BAD_INPUTS = {
    "lone surrogate": '[{"role": "user", "content": "cut emoji \\ud83d"}, {"role": "assistant", "content": "ok"}]',
    "huge integer": '[{"role": "user", "content": "x", "n": ' + "9" * 5000 + "}]",
    "resourceSpans a number": '{"resourceSpans": 5}',
    "scopeSpans of strings": '{"resourceSpans": [{"scopeSpans": ["x"]}]}',
    "dotted_order a number": '[{"id": "a", "name": "n", "run_type": "chain", "dotted_order": 5}]',
    "nested 100000 deep": "[" * 100_000 + "]" * 100_000,
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_the_cli_answers_a_bad_trace_with_one_line_and_an_exit_code(tmp_path, capsys, name):
    trace = tmp_path / "trace.json"
    trace.write_text(BAD_INPUTS[name])
    expect = tmp_path / "expect.json"
    expect.write_text('{"description": "The agent answers."}')
    code = main(["plan", str(trace), "--expect", str(expect)])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert code == 0 or (code == 2 and err.count("\n") == 1 and err.startswith("refinery: error: "))


@pytest.mark.parametrize(
    "text",
    ['{"description": "do it \\ud800 now"}', "[" * 100_000 + "]" * 100_000, '{"description": ' + "7" * 5000 + "}"],
    ids=["lone surrogate", "nested 100000 deep", "huge integer"],
)
def test_the_cli_answers_a_bad_expectation_with_one_line_and_an_exit_code(tmp_path, capsys, text):
    trace = tmp_path / "trace.json"
    trace.write_text('[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"}]')
    expect = tmp_path / "expect.json"
    expect.write_text(text)
    code = main(["plan", str(trace), "--expect", str(expect)])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert code == 0 or (code == 2 and err.count("\n") == 1 and err.startswith("refinery: error: "))


async def test_a_run_over_a_trace_and_an_expectation_with_lone_surrogates_completes(openai_env, tmp_path):
    from refinery.app.cli import amain

    trace = tmp_path / "trace.json"
    trace.write_text(
        '[{"role": "user", "content": "refund 42 \\ud83d please"}, {"role": "assistant", "content": "ok \\udc00"}]'
    )
    expect = tmp_path / "expect.json"
    expect.write_text('{"description": "Refund \\ud800 order 42"}')
    out = tmp_path / "out"
    assert await amain(["run", str(trace), "--expect", str(expect), "--out", str(out), "--stages", "1-4"]) == 0
    assert (out / "report.html").is_file()
    assert any("\ufffd" in json.dumps(b, ensure_ascii=False) for b in openai_env.response_bodies)  # replaced, then sent
