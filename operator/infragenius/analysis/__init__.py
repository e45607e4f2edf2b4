"""The Analysis resource: pure engine, the run pipeline, and the operator-side service."""
