"""Pinned versions of everything the local cluster builds from Go modules.

Bumping one of these builds a new cache entry; old entries stay until removed.
"""

KUBERNETES_VERSION = "1.36.3"
ETCD_VERSION = "3.6.16"
KWOK_VERSION = "0.8.0"
# The Go release these were checked with; newer Go works, older may not.
MIN_GO_VERSION = (1, 26)
# The newest release whose module zip builds a CPU-only server with cgo alone (later ones need
# headers under a vendor/ path that module zips drop, or fetch llama.cpp with cmake).
OLLAMA_VERSION = "0.11.4"
HELM_VERSION = "3.22.0"
COREDNS_VERSION = "1.15.0"
# The load generator of benchmarks/server_load.py (MIT; k6 is AGPL).
VEGETA_VERSION = "12.13.0"
