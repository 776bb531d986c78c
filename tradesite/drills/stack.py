"""The stack of a drill run: each process started on its own as a real subprocess on 127.0.0.1,
in its own process group, with a private Redis and a scratch SQLite database in a temp dir.

Only the drill runner imports this (it calls :func:`django.setup` after :meth:`Stack.environ`
is in ``os.environ``). Every process is killed with its group when the stack closes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tradesite.devservices import free_port, redis_command, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable


def wait_for(condition, timeout_s: float, what: str, poll_s: float = 0.2):
    """``condition()``'s first truthy value, or AssertionError after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s:.0f} s: {what}")
        time.sleep(poll_s)


class Stack:
    """Processes by name; ``start``/``kill``/``stop`` one, ``close`` all (and Redis)."""

    def __init__(self, keep: bool = False) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="tradesite-drills-"))
        self.keep = keep
        self.redis_port = free_port()
        self.web_port = free_port()
        self.sim_ports = {"upbit": free_port(), "binance": free_port(), "futures": free_port(),
                          "bithumb": free_port()}
        self.procs: dict[str, subprocess.Popen] = {}
        self.redis: subprocess.Popen | None = None
        self.live = False  # TRADING_LIVE=1 in the processes started from now on
        (self.tmp / "logs").mkdir()
        (self.tmp / "redis").mkdir()

    # -- environment -----------------------------------------------------------------------

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def sim_url(self) -> str:
        return f"http://127.0.0.1:{self.sim_ports['upbit']}"

    def environ(self) -> dict[str, str]:
        drop = ("DATABASE_URL", "REDIS_URL")
        env = {k: v for k, v in os.environ.items() if k not in drop}
        env.update(
            TRADESITE_VAR_DIR=str(self.tmp / "var"),
            TRADESITE_STATIC_ROOT=str(self.tmp / "static"),
            WHITENOISE_USE_FINDERS="1",
            DATABASE_URL=f"sqlite:///{self.tmp / 'db.sqlite3'}",
            REDIS_URL=self.redis_url,
            SIM_UPBIT_PORT=str(self.sim_ports["upbit"]),
            SIM_BINANCE_PORT=str(self.sim_ports["binance"]),
            SIM_FUTURES_PORT=str(self.sim_ports["futures"]),
            SIM_BITHUMB_PORT=str(self.sim_ports["bithumb"]),
            PYTHONUNBUFFERED="1",
            XDG_RUNTIME_DIR=os.environ.get("XDG_RUNTIME_DIR", str(self.tmp)),
            TRADING_LIVE="1" if self.live else "0",
        )
        return env

    def log(self, name: str) -> Path:
        return self.tmp / "logs" / f"{name}.log"

    def tail(self, name: str, chars: int = 2000) -> str:
        path = self.log(name)
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    # -- Redis -----------------------------------------------------------------------------

    def start_redis(self) -> None:
        out = self.log("redis").open("ab")
        self.redis = subprocess.Popen(redis_command(self.tmp / "redis", self.redis_port),
                                      stdout=out, stderr=subprocess.STDOUT,
                                      start_new_session=True)
        wait_for_port(self.redis_port, proc=self.redis)

    def kill_redis(self) -> None:
        if self.redis is not None and self.redis.poll() is None:
            os.killpg(self.redis.pid, signal.SIGKILL)
            self.redis.wait(10)

    # -- processes -------------------------------------------------------------------------

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        """A one-off command (``manage.py`` ARGS), to completion."""
        return subprocess.run([PY, "manage.py", *args], cwd=ROOT, env=self.environ(),
                              capture_output=True, text=True, timeout=timeout, check=True)

    def start(self, name: str, argv: list[str]) -> subprocess.Popen:
        out = self.log(name).open("ab")
        proc = subprocess.Popen(argv, cwd=ROOT, env=self.environ(), stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
        self.procs[name] = proc
        return proc

    def start_sim(self, *extra: str) -> None:
        ports = self.sim_ports
        self.start("sim", [PY, "manage.py", "simexchange", "--upbit-port", str(ports["upbit"]),
                           "--binance-port", str(ports["binance"]),
                           "--futures-port", str(ports["futures"]),
                           "--bithumb-port", str(ports["bithumb"]), "--venues", "upbit",
                           *extra])
        wait_for_port(ports["upbit"], timeout=60, proc=self.procs["sim"])

    def start_stream(self) -> None:
        self.start("stream", [PY, "manage.py", "stream", "--venue", "sim"])

    @staticmethod
    def worker_argv(name: str = "drill") -> list[str]:
        return [PY, "-m", "celery", "-A", "tradesite", "worker", "-Q",
                "collector,trader,optimizer", "-c", "1", "-n", f"{name}@%h",
                "--without-gossip", "--without-mingle", "-l", "INFO"]

    def start_worker(self) -> None:
        self.start("worker", self.worker_argv())

    def start_beat(self) -> None:
        self.start("beat", [PY, "-m", "celery", "-A", "tradesite", "beat", "--scheduler",
                            "tradesite.beat:HeartbeatScheduler", "-s",
                            str(self.tmp / "beat-schedule"), "-l", "INFO"])

    def start_web(self) -> None:
        self.start("web", [PY, "-m", "tradesite.web", "--host", "127.0.0.1",
                           "--port", str(self.web_port)])
        wait_for_port(self.web_port, timeout=60, proc=self.procs["web"])

    def kill(self, name: str) -> None:
        """SIGKILL to the process and its group (pool children too)."""
        proc = self.procs.pop(name, None)
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)

    def kill_everything(self) -> list[str]:
        """SIGKILL every process group and Redis at once (all signals sent before any wait),
        except the simulator: it is the exchange. Returns the names killed."""
        victims = [(n, p) for n, p in self.procs.items() if n != "sim" and p.poll() is None]
        if self.redis is not None and self.redis.poll() is None:
            victims.append(("redis", self.redis))
        for _, proc in victims:
            os.killpg(proc.pid, signal.SIGKILL)
        for name, proc in victims:
            proc.wait(10)
            self.procs.pop(name, None)
        return [name for name, _ in victims]

    def stop(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)

    def alive(self, name: str) -> bool:
        proc = self.procs.get(name)
        return proc is not None and proc.poll() is None

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name)

    def close(self) -> None:
        self.stop_all()
        if self.redis is not None and self.redis.poll() is None:
            self.redis.terminate()
            try:
                self.redis.wait(10)
            except subprocess.TimeoutExpired:
                self.kill_redis()
        if not self.keep:
            import shutil

            shutil.rmtree(self.tmp, ignore_errors=True)
