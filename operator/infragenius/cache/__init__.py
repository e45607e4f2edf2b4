"""Caches at the I/O edge: the LLM explanation cache in Redis."""
