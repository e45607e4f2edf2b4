"""A real Kubernetes control plane run as local processes (no Docker needed).

The binaries are built from Go modules at pinned versions and cached under
``~/.cache/infragenius/bin/``; kwok plays the kubelet on fake nodes.
"""

from infragenius_devtools.devcluster.cluster import ClusterInfo, LocalCluster
from infragenius_devtools.devcluster.errors import DevClusterError

__all__ = ["ClusterInfo", "DevClusterError", "LocalCluster"]
