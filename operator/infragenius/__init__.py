"""InfraGenius: a Kubernetes operator for evidence-backed diagnoses."""

__version__ = "0.1.0"
