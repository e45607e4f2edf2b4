"""The scenarios live in the package so the demo and benchmarks share them with the tests."""

from infragenius.devcluster.scenarios import *  # noqa: F401,F403
from infragenius.devcluster.scenarios import (  # noqa: F401  (names the tests use)
    apply,
    break_namespace,
    deployment,
    healthy_namespace,
    patch_failure,
    post_warning_event,
    wait_pods,
)
