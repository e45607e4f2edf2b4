"""How long history waits between attempts to reach Postgres: exponential, but never longer than a cap.

psycopg_pool's own reconnection doubles its delay (1 s, 2 s, 4 s, ... with ±10 % jitter) until the pool's
``reconnect_timeout`` and then gives up on that connection. Left at its default (300 s) the delay reaches
64-128 s, so a Postgres that came up three minutes late was noticed minutes later. The store therefore sets
``reconnect_timeout`` to the cap (which bounds every one of those delays, see ``HistoryStore``) and starts a
new round when one gives up; the recorder's own retry loop uses ``retry_delay`` below.
"""

from __future__ import annotations

INITIAL_DELAY = 0.5
FACTOR = 2.0


def retry_delay(failures: int, cap: float, initial: float = INITIAL_DELAY) -> float:
    """Seconds to wait after ``failures`` consecutive failures (≥ 1): initial, 2×, 4×, ... never above ``cap``.

    There is no last attempt: any number of failures still yields a delay, so retrying never stops.
    """
    if failures < 1:
        raise ValueError("retry_delay needs at least one failure")
    if cap <= 0:
        raise ValueError("the cap must be positive")
    # Double step by step and stop at the cap: FACTOR ** failures would overflow a float after ~1000 failures.
    steps = failures - 1
    delay = initial
    while steps > 0 and delay < cap:
        delay *= FACTOR
        steps -= 1
    return min(delay, cap)
