"""A real Prometheus (Debian's package) serving backfilled data only: no scraping, for tests and benchmarks.

Subclasses say what to backfill (:meth:`LocalPrometheus.write_openmetrics`); promtool turns it into one
TSDB block and Prometheus serves it on 127.0.0.1.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import httpx


class PrometheusUnavailable(Exception):
    pass


class LocalPrometheus:
    """Backfill :meth:`write_openmetrics`, then run Prometheus (no scraping) on 127.0.0.1:``port``."""

    def __init__(self, home: Path, port: int) -> None:
        self.home, self.port = home, port
        self.url = f"http://127.0.0.1:{port}"
        self.data_dir = home / "data"
        self.log = home / "prometheus.log"
        self.backfill_seconds = 0.0
        self.start_seconds = 0.0
        self._process: subprocess.Popen[bytes] | None = None
        self._backfilled = False

    def start(self) -> LocalPrometheus:
        prometheus, promtool = shutil.which("prometheus"), shutil.which("promtool")
        if not prometheus or not promtool:
            raise PrometheusUnavailable("prometheus/promtool not installed (Debian: apt-get install prometheus)")
        started = time.perf_counter()
        if not self._backfilled:  # a restart after stop() serves the same blocks again
            self._backfill(promtool)
        backfilled = time.perf_counter()
        self.backfill_seconds = self.backfill_seconds or backfilled - started
        config = self.home / "prometheus.yml"
        config.write_text("global:\n  scrape_interval: 1m\n")
        with self.log.open("wb") as out:
            self._process = subprocess.Popen(
                [
                    prometheus,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={self.data_dir}",
                    # Retention counts back from the newest block; the data is a month long.
                    "--storage.tsdb.retention.time=36500d",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while not is_ready(self.url):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise PrometheusUnavailable(f"prometheus did not start: {self.log.read_text()[-800:]}")
            time.sleep(0.2)
        self.start_seconds = time.perf_counter() - backfilled
        return self

    def write_openmetrics(self, path: Path) -> Path:
        """Write the series to backfill (OpenMetrics text ending in ``# EOF``) to ``path``."""
        raise NotImplementedError

    def _backfill(self, promtool: str) -> None:
        source = self.write_openmetrics(self.home / "backfill.om")
        # One block for the whole month: 2h blocks (the default) take minutes to write and compact.
        created = subprocess.run(
            [
                promtool,
                "tsdb",
                "create-blocks-from",
                "openmetrics",
                "--max-block-duration=768h",
                str(source),
                str(self.data_dir),
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
        if created.returncode != 0:
            raise PrometheusUnavailable(f"promtool failed: {created.stderr[-500:]}")
        source.unlink()
        self._backfilled = True

    def stop(self) -> None:
        stop_process(self._process)
        self._process = None


def stop_process(process: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM, then SIGKILL after 15 s."""
    if process is None:
        return
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


def is_ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/-/ready", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
