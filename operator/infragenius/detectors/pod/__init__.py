"""Pod problems, rolled up to the pods' outermost controller (see :mod:`.detector`)."""

from infragenius.detectors.pod.detector import DETECTOR, PodDetector

__all__ = ["DETECTOR", "PodDetector"]
