"""Kopf wiring only: decorators that delegate to one module per resource kind (and the alert receiver).

Importing this package registers every handler.
"""

from infragenius.handlers import alerts, analysis, incident, lifecycle, slo

__all__ = ["alerts", "analysis", "incident", "lifecycle", "slo"]
