"""Analysts: the staged one over a hosted vector store, and the single-call baseline."""
