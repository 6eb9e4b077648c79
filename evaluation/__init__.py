"""The challenge's metric (SPEC 5) and scoring of a prediction root against a reference root."""
