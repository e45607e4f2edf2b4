"""Pydantic models: the single source of truth for spec, status, findings and settings."""
