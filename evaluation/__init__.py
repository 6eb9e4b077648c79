"""The challenge's metric (docs/data-and-metric.md) and scoring of a prediction root against a reference root."""
