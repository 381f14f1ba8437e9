"""Property specs for the margin and metric-learning losses."""

SPECS = []
