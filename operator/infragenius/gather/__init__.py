"""Gatherers: the only code that reads the cluster and Prometheus."""
