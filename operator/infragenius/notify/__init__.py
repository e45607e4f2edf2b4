"""Notification payloads and their delivery over HTTP (no Kubernetes API, no database)."""
