"""A batch's files as lines: one request a line, files cut at the API's limits, results read by custom_id."""

from __future__ import annotations

import json

import pytest

from refinery.errors import BatchFileError
from refinery.wire.batch_jsonl import MAX_BYTES, MAX_REQUESTS, BatchOutcome, read_outcomes, request_line, split_input

BODY = {"model": "gpt-4.1-mini", "input": "hello"}


def lines(n: int, body: dict | None = None) -> list[str]:
    return [request_line(f"t{i}", "/v1/responses", body or BODY) for i in range(n)]


def test_the_api_limits_are_fifty_thousand_requests_and_200_mb():
    assert (MAX_REQUESTS, MAX_BYTES) == (50_000, 200 * 1024 * 1024)


def test_a_request_line_is_the_api_input_object_on_one_line():
    line = request_line("trace-1:stage2", "/v1/responses", {"model": "m", "input": "a\nb\u2028c"})
    assert "\n" not in line and "\u2028" not in line
    assert json.loads(line) == {
        "custom_id": "trace-1:stage2",
        "method": "POST",
        "url": "/v1/responses",
        "body": {"model": "m", "input": "a\nb\u2028c"},
    }


@pytest.mark.parametrize("custom_id", ["", None])
def test_a_request_line_needs_a_custom_id(custom_id):
    with pytest.raises(BatchFileError, match="custom_id"):
        request_line(custom_id, "/v1/responses", BODY)  # type: ignore[arg-type]


def test_a_request_line_needs_an_endpoint_path():
    with pytest.raises(BatchFileError, match="url must be an endpoint path"):
        request_line("a", "https://api.openai.com/v1/responses", BODY)


def test_split_input_keeps_one_file_within_the_limits():
    assert split_input(lines(3)) == [lines(3)]


def test_split_input_cuts_at_the_request_limit_in_order():
    files = split_input(lines(7), max_requests=3)
    assert [len(f) for f in files] == [3, 3, 1]
    assert sum(files, []) == lines(7)


def test_split_input_cuts_at_the_byte_limit_counting_each_newline():
    each = len(lines(1)[0].encode()) + 1
    files = split_input(lines(5), max_bytes=2 * each)
    assert [len(f) for f in files] == [2, 2, 1]
    assert all(sum(len(x.encode()) + 1 for x in f) <= 2 * each for f in files)


def test_split_input_counts_bytes_not_characters():
    wide = lines(4, {"model": "m", "input": "é" * 100})  # 2 bytes a character in UTF-8
    each = len(wide[0].encode()) + 1
    assert each > len(wide[0]) + 100
    assert [len(f) for f in split_input(wide, max_bytes=each * 2 - 1)] == [1, 1, 1, 1]


def test_split_input_refuses_a_custom_id_used_twice_naming_both_lines():
    twice = lines(3) + [request_line("t1", "/v1/responses", BODY)]
    with pytest.raises(BatchFileError, match=r"line 4: custom_id 't1' already used on line 2"):
        split_input(twice)


def test_split_input_refuses_a_line_larger_than_a_whole_file():
    with pytest.raises(BatchFileError, match=r"line 1 \(t0\): .* more than a whole input file"):
        split_input(lines(1), max_bytes=10)


def test_split_input_reads_the_custom_id_of_a_line_written_elsewhere():
    other = json.dumps({"method": "POST", "url": "/v1/responses", "body": BODY, "custom_id": "x"})
    assert split_input([other, *lines(1)]) == [[other, *lines(1)]]


@pytest.mark.parametrize(
    ("line", "says"),
    [("not json", "line 2: not JSON"), ('{"method": "POST"}', "line 2: no custom_id"), ('{"custom_id": ""}', "line 2")],
)
def test_split_input_names_a_bad_line(line, says):
    with pytest.raises(BatchFileError, match=says):
        split_input([lines(1)[0], line])


def test_split_input_refuses_a_line_break_inside_a_line():
    with pytest.raises(BatchFileError, match="line 1: .* line break"):
        split_input(['{"custom_id": "a"}\n{"custom_id": "b"}'])


def output_line(custom_id: str, status: int = 200, body: dict | None = None) -> str:
    return json.dumps(
        {
            "id": f"batch_req_{custom_id}",
            "custom_id": custom_id,
            "response": {"status_code": status, "request_id": f"req_{custom_id}", "body": body or {"id": "resp_1"}},
            "error": None,
        }
    )


def test_read_outcomes_matches_each_result_by_custom_id():
    outcomes = read_outcomes([output_line("b"), "", output_line("a", 500, {"error": {"message": "boom"}})])
    assert set(outcomes) == {"a", "b"}
    assert outcomes["b"] == BatchOutcome(custom_id="b", status_code=200, body={"id": "resp_1"}, request_id="req_b")
    assert outcomes["b"].ok
    assert outcomes["a"].status_code == 500 and not outcomes["a"].ok


def test_read_outcomes_reads_an_expired_line_of_the_error_file():
    expired = {"code": "batch_expired", "message": "This request could not be executed before the window expired."}
    line = json.dumps({"id": "batch_req_1", "custom_id": "c", "response": None, "error": expired})
    outcome = read_outcomes([line], source="errors.jsonl")["c"]
    assert (outcome.status_code, outcome.body, outcome.error, outcome.ok) == (None, None, expired, False)


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"response": null, "error": {"code": "x"}}', "no custom_id"),
        ('{"custom_id": "a", "response": null, "error": null}', r"\(a\): neither a response nor an error"),
        ('{"custom_id": "a", "response": {"status_code": "200"}, "error": null}', "status_code must be an integer"),
        ('{"custom_id": "a", "response": {"status_code": 200, "body": "x"}, "error": null}', "body must be an object"),
        ('{"custom_id": "a", "response": null, "error": "expired"}', "error must be an object or null"),
    ],
)
def test_read_outcomes_names_the_file_and_line_of_a_bad_line(line, says):
    with pytest.raises(BatchFileError, match=rf"out\.jsonl line 2.*{says}"):
        read_outcomes([output_line("ok"), line], source="out.jsonl")


def test_read_outcomes_refuses_a_custom_id_twice():
    with pytest.raises(BatchFileError, match=r"batch output line 2: custom_id 'a' appears twice"):
        read_outcomes([output_line("a"), output_line("a")])
