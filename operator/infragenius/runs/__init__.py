"""The run lifecycle the three kinds share: ids, work slots, Running/Completed/Failed status, retries,
Degraded with its reasons, the history write, and one client for our custom resources.

Kinds (``analysis``, ``incident``, ``slo``) build on this package; it knows none of them.
"""
