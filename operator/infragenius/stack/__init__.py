"""The stack the operator deploys for itself: Postgres, Redis and Ollama, kept in their desired state."""
