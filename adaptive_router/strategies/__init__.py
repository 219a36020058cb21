"""Strategies that spend the allocated units: best-of-k with a reranker, cheap/expensive routes."""
