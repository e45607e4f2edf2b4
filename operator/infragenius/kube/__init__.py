"""The vocabulary for raw Kubernetes API objects: pure, typed functions over plain dicts, no I/O."""
