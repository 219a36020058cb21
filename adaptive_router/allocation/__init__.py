"""Allocation: predicted reward curves + a budget -> how many units each query gets (numpy only)."""
