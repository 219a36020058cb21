"""Difficulty probe: a local model's hidden states -> predicted reward curves (torch lives here only)."""
