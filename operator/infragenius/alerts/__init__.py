"""Alertmanager's way in: the webhook receiver, and the sinks that turn alerts into SLOReview runs and
IncidentReports. It writes our resources through their API like any client; it imports no kind."""
