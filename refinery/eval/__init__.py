"""Scoring on labelled agent failures: Who&When and TRAIL, and labels of one's own.

The scorers (`who_and_when.score`, `trail.score`, `labels`) are pure functions over predictions and
labels, with the benchmarks' own official scripts (`official`). Running refinery over a benchmark
and scoring what it found is the application's part: `refinery.app.eval_runner`. See docs/eval.md.
"""
