"""SLOReview: error budgets and burn rates from Prometheus, reviews triggered by Alertmanager."""
