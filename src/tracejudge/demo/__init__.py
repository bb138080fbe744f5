"""``tracejudge demo``: a small traced RAG app on the local model, then its own evaluation."""
