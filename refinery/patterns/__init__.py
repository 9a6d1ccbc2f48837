"""Failure patterns across many analyses: grouped by what failed and why (`grouping`, pure), then
merged and named by one model call (`merge`)."""
