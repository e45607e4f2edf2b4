"""Kopf wiring only: decorators that delegate to one module per resource kind.

Importing this package registers every handler.
"""

from infragenius.handlers import analysis, incident, lifecycle, slo

__all__ = ["analysis", "incident", "lifecycle", "slo"]
