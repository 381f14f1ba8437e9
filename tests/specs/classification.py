"""Property specs for the classification, margin, metric and segmentation losses."""

SPECS = []
