"""The vocabulary for raw Kubernetes API objects (plain JSON dicts), shared by the snapshot, the detectors
and the incident timeline. Pure, typed functions; no I/O; imports nothing of infragenius but ``models``.

- ``meta``: metadata fields, ``ref_of(obj, kind)`` (the one ResourceRef builder) and (kind, namespace, name) keys
- ``owners``: owner references and the controlling one
- ``conditions``: ``status.conditions`` of raw objects (find by type, True/False)
- ``pods``: pod readiness, container states, where each workload kind keeps its pod template
- ``events``: core/v1 and events.k8s.io events, with one "last seen" precedence
- ``selectors``: LabelSelector and map selectors, matching and kubectl text
- ``quantity``: resource quantities ("250m", "1Gi") as Decimals
- ``time``: RFC 3339 parsing and formatting, ages and human durations
"""
