"""A local-path volume provisioner for the real node: PVCs of the ``local-path`` StorageClass get a
directory under the node's state directory and a ``local`` PV pinned to the node; a Released PV's
directory and object are deleted.

The StorageClass binds on first consumer, so the scheduler picks the node first and names it in the
claim's ``volume.kubernetes.io/selected-node`` annotation. A ``local`` volume (unlike ``hostPath``)
gets the pod's ``fsGroup``, so non-root Postgres can write to it.

Run by the devcluster as its own process: ``python -m infragenius_devtools.devcluster.provisioner``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import re
import shutil
import signal
import ssl
import time
from pathlib import Path
from typing import Any

import httpx

PROVISIONER = "infragenius.io/local-path"
STORAGE_CLASS = "local-path"
SELECTED_NODE = "volume.kubernetes.io/selected-node"
_SAFE = re.compile(r"[^a-z0-9.-]")
log = logging.getLogger("provisioner")


def storage_class() -> dict[str, Any]:
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {
            "name": STORAGE_CLASS,
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
        },
        "provisioner": PROVISIONER,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "WaitForFirstConsumer",
    }


def volume_for(claim: dict[str, Any], node: str, root: Path) -> tuple[Path, dict[str, Any]]:
    """The directory and the PV for one claim, pre-bound to it."""
    meta = claim["metadata"]
    name = f"pvc-{meta['uid']}"
    directory = root / _SAFE.sub("-", f"{meta['namespace']}-{meta['name']}-{meta['uid'][:8]}")
    pv = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name, "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER}},
        "spec": {
            "capacity": {"storage": claim["spec"]["resources"]["requests"]["storage"]},
            "accessModes": claim["spec"]["accessModes"],
            "persistentVolumeReclaimPolicy": "Delete",
            "storageClassName": STORAGE_CLASS,
            "volumeMode": "Filesystem",
            "local": {"path": str(directory)},
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": meta["namespace"],
                "name": meta["name"],
                "uid": meta["uid"],
            },
            "nodeAffinity": {
                "required": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}
                    ]
                }
            },
        },
    }
    return directory, pv


class _Api:
    """The few calls the provisioner makes, as JSON over the admin client certificate."""

    def __init__(self, server: str, pki_dir: Path) -> None:
        context = ssl.create_default_context(cafile=str(pki_dir / "ca.crt"))
        context.load_cert_chain(str(pki_dir / "admin.crt"), str(pki_dir / "admin.key"))
        self.server = server
        self.http = httpx.Client(verify=context, timeout=10.0)

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        reply = self.http.request(method, self.server + path, json=body)
        if reply.status_code >= 400 and reply.status_code not in (404, 409):
            reply.raise_for_status()
        data = reply.json()
        return data if isinstance(data, dict) else {}


def reconcile(api: _Api, node: str, root: Path) -> None:
    """One pass: provision waiting claims on our node, delete released volumes."""
    existing = {pv["metadata"]["name"]: pv for pv in api.call("GET", "/api/v1/persistentvolumes")["items"]}
    for claim in api.call("GET", "/api/v1/persistentvolumeclaims")["items"]:
        meta = claim["metadata"]
        if (
            claim["spec"].get("storageClassName") != STORAGE_CLASS
            or claim.get("status", {}).get("phase") != "Pending"
            or (meta.get("annotations") or {}).get(SELECTED_NODE) != node
            or f"pvc-{meta['uid']}" in existing
        ):
            continue
        directory, pv = volume_for(claim, node, root)
        directory.mkdir(parents=True, exist_ok=True)
        # The pod's fsGroup takes it over; until then anyone may create its first files.
        directory.chmod(0o777)
        with contextlib.suppress(httpx.HTTPError):
            api.call("POST", "/api/v1/persistentvolumes", pv)
            log.info("provisioned %s for %s/%s", pv["metadata"]["name"], meta["namespace"], meta["name"])
    for pv in existing.values():
        annotations = pv["metadata"].get("annotations") or {}
        if annotations.get("pv.kubernetes.io/provisioned-by") != PROVISIONER:
            continue
        if pv.get("status", {}).get("phase") != "Released":
            continue
        path = Path(pv["spec"]["local"]["path"])
        if path.parent == root:
            shutil.rmtree(path, ignore_errors=True)
        with contextlib.suppress(httpx.HTTPError):
            api.call("DELETE", f"/api/v1/persistentvolumes/{pv['metadata']['name']}")
            log.info("deleted %s and %s", pv["metadata"]["name"], path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--server", required=True)
    parser.add_argument("--pki", required=True, type=Path, help="the cluster's PKI directory (admin client cert)")
    parser.add_argument("--node", required=True)
    parser.add_argument("--root", required=True, type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    args.root.mkdir(parents=True, exist_ok=True)
    api = _Api(args.server, args.pki)
    stop = False

    def request_stop(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, request_stop)
    while not stop:
        try:
            reconcile(api, args.node, args.root)
        except Exception as err:  # the API server restarts in fault tests: keep going
            log.warning("reconcile failed: %s", err)
        time.sleep(1.0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
