"""The explicit list of detectors; adding one means adding a line here (and to DetectorName)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

from infragenius.detectors import (
    admission_webhook,
    bestpractice,
    configmap,
    cronjob,
    daemonset,
    deployment,
    events,
    hpa,
    ingress,
    job,
    metrics,
    networkpolicy,
    node,
    pdb,
    pod,
    pvc,
    replicaset,
    resourcequota,
    service,
    statefulset,
)
from infragenius.detectors.base import Detector

DETECTORS: Mapping[str, Detector] = MappingProxyType(
    {
        module.DETECTOR.name: module.DETECTOR
        for module in (
            pod,
            deployment,
            replicaset,
            statefulset,
            daemonset,
            job,
            cronjob,
            hpa,
            pdb,
            service,
            ingress,
            pvc,
            node,
            configmap,
            admission_webhook,
            networkpolicy,
            resourcequota,
            events,
            bestpractice,
            metrics,
        )
    }
)


def select(include: Iterable[str] = (), exclude: Iterable[str] = ()) -> list[Detector]:
    """Detectors to run: ``include`` (all when empty) minus ``exclude``, in registry order."""
    wanted = set(include) or set(DETECTORS)
    unwanted = set(exclude)
    return [d for name, d in DETECTORS.items() if name in wanted and name not in unwanted]


def kinds_needed(detectors: Iterable[Detector]) -> set[str]:
    """Every kind the selected detectors read; Pods are always gathered for owner roll-up."""
    kinds = {"Pod"}
    for detector in detectors:
        kinds |= set(detector.kinds)
    return kinds
