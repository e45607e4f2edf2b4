"""Rule-based detectors: pure functions of a snapshot, one per module, listed in ``registry``."""
