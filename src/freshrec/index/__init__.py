"""Top-k retrieval over item vectors."""
