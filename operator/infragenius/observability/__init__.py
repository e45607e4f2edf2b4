"""Metrics, health endpoints and structured logs: how an SRE sees the operator itself."""
