"""A throwaway scale-out cluster on 127.0.0.1: a `prefect server`, its pools, deployments and workers.

For the slow end-to-end test and the pool-launcher benchmark, which must exercise the same
commands a user runs on a fleet (``flowrl pool create``, ``prefect deploy``, ``flowrl worker
start``) against a real server, and must leave no process behind whatever fails.  Every process
starts in its own session so that stopping it takes its whole tree (a worker's flow-run
processes and their trainers included).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kill_tree(pid: int, sig: int = signal.SIGKILL, timeout: float = 20.0) -> None:
    """Signal a process and all its descendants, then wait for them to go."""
    try:
        root = psutil.Process(pid)
        procs = root.children(recursive=True) + [root]
    except psutil.NoSuchProcess:
        return
    for p in procs:
        try:
            p.send_signal(sig)
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(procs, timeout=timeout)


class LocalCluster:
    """Use as a context manager; ``env`` is what every command and worker runs with.

    ``home`` holds the server's database and the processes' logs.  Worker poll intervals are
    set to 1 s (Prefect's default is 10 s), which is what a latency-minded fleet would use too.
    """

    def __init__(self, home: Path, *, extra_env: dict[str, str] | None = None, startup_timeout_s: float = 180.0):
        self.home = Path(home)
        self.logs = self.home / "logs"
        self.port = free_port()
        self.api = f"http://127.0.0.1:{self.port}/api"
        self.env = dict(os.environ, PREFECT_HOME=str(self.home / "prefect"), PREFECT_API_URL=self.api,
                        PREFECT_SERVER_ANALYTICS_ENABLED="false", PREFECT_WORKER_QUERY_SECONDS="1",
                        PREFECT_WORKER_PREFETCH_SECONDS="1", FLOWRL_CHECKOUT=str(ROOT), PYTHONUNBUFFERED="1",
                        **(extra_env or {}))
        self.startup_timeout_s = startup_timeout_s
        self.started: list[subprocess.Popen] = []
        self._files: list[IO[str]] = []
        self.workers: list[subprocess.Popen] = []

    # ----------------------------------------------------------------------------- lifecycle
    def __enter__(self) -> "LocalCluster":
        self.logs.mkdir(parents=True, exist_ok=True)
        try:
            self.spawn("server", ["prefect", "server", "start", "--host", "127.0.0.1", "--port", str(self.port)])
            self._wait_healthy()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """SIGTERM every tree (a worker stops cleanly), then SIGKILL what is left."""
        for proc in reversed(self.started):
            kill_tree(proc.pid, signal.SIGTERM, timeout=15)
            kill_tree(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        for fh in self._files:
            fh.close()
        self.started, self._files, self.workers = [], [], []

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self.started[0].poll() is not None:
                break
            try:
                if httpx.get(f"{self.api}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(1)
        raise RuntimeError(f"prefect server on {self.api} did not start: {self.log('server')[-2000:]}")

    # ----------------------------------------------------------------------------- commands
    def spawn(self, name: str, cmd: list[str]) -> subprocess.Popen:
        """A long-running process (server, worker), its output in ``logs/<name>.log``."""
        out = open(self.logs / f"{name}.log", "w")
        self._files.append(out)
        proc = subprocess.Popen(cmd, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.started.append(proc)
        return proc

    def run(self, *cmd: str, timeout: float = 300) -> subprocess.CompletedProcess:
        """A command that finishes (pool create, deploy), against this cluster's server."""
        return subprocess.run(list(cmd), cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout)

    def check(self, *cmd: str, timeout: float = 300) -> subprocess.CompletedProcess:
        done = self.run(*cmd, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}): {done.stdout[-2000:]} {done.stderr[-2000:]}")
        return done

    def flowrl(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return self.run(sys.executable, "-m", "flows.cli", *args, timeout=timeout)

    def create_pools(self, gpus: int) -> subprocess.CompletedProcess:
        return self.check(sys.executable, "-m", "flows.cli", "pool", "create", "--gpus", str(gpus))

    def deploy(self, *names: str) -> subprocess.CompletedProcess:
        """``prefect deploy`` from prefect.yaml: the named deployments, or all of them."""
        which = [a for n in names for a in ("--name", n)] or ["--all"]
        return self.check("prefect", "--no-prompt", "deploy", *which)

    def start_workers(self, gpus: list[str] | range) -> list[subprocess.Popen]:
        """One ``flowrl worker start --gpu K`` per GPU id, as on a real GPU machine."""
        new = [self.spawn(f"worker{g}", [sys.executable, "-m", "flows.cli", "worker", "start", "--gpu", str(g)])
               for g in gpus]
        self.workers += new
        return new

    def log(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""
