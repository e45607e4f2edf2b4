"""The waits between attempts to reach Postgres are capped, and the attempts never stop."""

from __future__ import annotations

import pytest
from psycopg_pool.base import AttemptWithBackoff

from infragenius.history.backoff import retry_delay
from infragenius.history.store import HistoryStore
from infragenius.settings import Settings

CONNECT_SECONDS = 0.05  # a refused connection fails at once; what an attempt itself takes
HOUR = 3600.0


def pool_attempts(reconnect_timeout: float, horizon: float, restart_rounds: bool = True) -> list[float]:
    """When psycopg_pool's background task tries to connect to a Postgres that stays down, on a fake clock.

    This replays AsyncConnectionPool._add_connection with the library's own AttemptWithBackoff; when a round
    runs out, HistoryStore's reconnect_failed starts the next one at once (``restart_rounds``).
    """
    now, times = 0.0, []
    attempt: AttemptWithBackoff | None = None
    while now < horizon:
        if attempt is None:
            attempt = AttemptWithBackoff(timeout=reconnect_timeout)
        times.append(now)
        started, now = now, now + CONNECT_SECONDS  # the attempt fails
        if attempt.time_to_give_up(started):
            if not restart_rounds:
                break
            attempt = None  # HistoryStore._reconnect_failed: pool.check() schedules a new round now
            continue
        attempt.update_delay(started)
        now = started + attempt.delay
    return times


def gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in zip(times, times[1:], strict=False)]


@pytest.mark.parametrize("cap", [1.0, 2.0, 15.0, 30.0, 120.0])
def test_the_pool_waits_at_most_the_cap_between_attempts_and_never_stops(cap: float) -> None:
    for _ in range(20):  # the library jitters its first delay
        times = pool_attempts(cap, HOUR)
        assert max(gaps(times)) <= cap + CONNECT_SECONDS
        # Still trying at the end of the hour: no round was the last.
        assert times[-1] >= HOUR - cap - CONNECT_SECONDS


def test_without_the_cap_the_pool_waits_minutes_and_then_gives_up() -> None:
    """What was seen on a cluster: at the default reconnect_timeout (300 s) the waits grow past a minute."""
    times = pool_attempts(300.0, HOUR, restart_rounds=False)
    assert max(gaps(times)) > 60
    assert times[-1] < 301  # and after 300 s the library stops trying on its own


@pytest.mark.parametrize("cap", [1.0, 2.0, 15.0, 30.0, 120.0])
def test_the_recorder_retry_delay_grows_to_the_cap_and_stays_there(cap: float) -> None:
    delays = [retry_delay(n, cap) for n in range(1, 10001)]
    assert all(0 < d <= cap for d in delays)
    assert delays == sorted(delays)
    assert delays[0] == min(0.5, cap) and delays[-1] == cap
    assert retry_delay(10**9, cap) == cap  # no overflow, no last attempt


def test_retry_delay_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        retry_delay(0, 15)
    with pytest.raises(ValueError):
        retry_delay(1, 0)


def test_the_setting_bounds_the_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFRAGENIUS_HISTORY_RECONNECT_MAX_SECONDS", "7")
    cap = Settings().history_reconnect_max_seconds
    assert cap == 7
    store = HistoryStore("postgresql://nobody@127.0.0.1:1/none", reconnect_max_seconds=cap)
    assert store.pool.reconnect_timeout == 7
    assert Settings.model_fields["history_reconnect_max_seconds"].default <= 30


def test_connections_detect_a_vanished_postgres_within_seconds() -> None:
    """A deleted Postgres pod answers nothing: libpq must give up on unacknowledged data, not wait for
    TCP's ~15 minutes of retransmissions."""
    from infragenius.history.store import DEAD_PEER_DETECTION, HistoryStore

    assert DEAD_PEER_DETECTION["tcp_user_timeout"] <= 30_000
    assert DEAD_PEER_DETECTION["keepalives"] == 1
    probes = (
        DEAD_PEER_DETECTION["keepalives_idle"]
        + DEAD_PEER_DETECTION["keepalives_interval"] * (DEAD_PEER_DETECTION["keepalives_count"])
    )
    assert probes <= 60
    store = HistoryStore("postgresql://u@127.0.0.1:1/db")
    assert {k: store.pool.kwargs[k] for k in DEAD_PEER_DETECTION} == DEAD_PEER_DETECTION
