"""Evaluators: retrieval metrics over embeddings (more tasks follow)."""
