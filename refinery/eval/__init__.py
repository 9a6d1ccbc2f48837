"""Scoring refinery (or any tool) on labelled agent failures: Who&When and TRAIL.

`refinery.eval.eval_who_and_when(...)` / `eval_trail(...)` analyse a benchmark and score the
diagnoses; with `predictions_dir` they score predictions made elsewhere, in the benchmark's own
shape. The scorers (`who_and_when.score`, `trail.score`) are pure functions. See docs/eval.md.
"""

from refinery.eval.runner import eval_trail, eval_who_and_when, read_predictions

__all__ = ["eval_trail", "eval_who_and_when", "read_predictions"]
