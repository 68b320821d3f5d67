"""Real uvicorn servers on loopback ports, in threads or in child processes."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import uvicorn


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now.

    Taken below the kernel's ephemeral range (``ip_local_port_range``, 32768 and up by
    default): a port the kernel hands out for binding to port 0 may be given to an
    outgoing connection before the server that asked for it binds it, and with dozens of
    servers and clients starting at once in the suite that race did happen.
    """
    rng = random.SystemRandom()
    while True:
        port = rng.randint(20000, 32767)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


class ThreadServer:
    """A uvicorn server running an ASGI app in a background thread.

    ``graceful_seconds`` bounds how long ``stop()`` waits for requests still being served
    (uvicorn's ``timeout_graceful_shutdown``; by default it waits for all of them).
    """

    def __init__(
        self,
        app: Any,
        port: int | None = None,
        http: Any = "auto",
        *,
        graceful_seconds: float | None = None,
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            access_log=False,
            lifespan="on",
            loop="asyncio",
            http=http,
            timeout_graceful_shutdown=graceful_seconds,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> ThreadServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("server thread died during startup")
            if time.monotonic() > deadline:
                raise TimeoutError("server did not start within 30 s")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@contextlib.contextmanager
def serve(app: Any, port: int | None = None) -> Iterator[ThreadServer]:
    server = ThreadServer(app, port).start()
    try:
        yield server
    finally:
        server.stop()


def wait_http(
    url: str, *, timeout: float = 30.0, proc: subprocess.Popen[bytes] | None = None
) -> None:
    """Wait until ``url`` answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


class ChildProcess:
    """A command in its own process group, stopped (or killed) with the group."""

    def __init__(self, args: list[str], *, env: dict[str, str] | None = None, log: Path) -> None:
        self.args = args
        self.env = {**os.environ, **(env or {})}
        self.log_path = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ChildProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child's lifetime
        self.proc = subprocess.Popen(
            self.args, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        return self

    def kill(self) -> None:
        """SIGKILL the whole process group, as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
        return self.proc.returncode

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


def python_cmd(*args: str) -> list[str]:
    return [sys.executable, *args]
