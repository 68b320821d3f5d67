"""Real uvicorn servers on loopback ports, in threads or in child processes."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, Protocol

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


class _Server(uvicorn.Server):
    """uvicorn's server, which stops as soon as it is asked to.

    uvicorn looks at ``should_exit`` every 0.1 s (``main_loop``); this one also wakes up
    when ``request_stop`` is called, so a test waits for the shutdown itself, not for the
    next look. Its ticks (the Date header each second) are unchanged.
    """

    _wake: asyncio.Event | None = None
    _loop: asyncio.AbstractEventLoop | None = None

    async def main_loop(self) -> None:
        self._wake = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864000
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.1):
                    await self._wake.wait()

    def request_stop(self) -> None:
        self.should_exit = True
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already ended
                loop.call_soon_threadsafe(wake.set)


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
        self.server = _Server(config)
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
        stop_all([self])


def stop_all(servers: Iterable[ThreadServer]) -> None:
    """Stop servers together: each shuts down while the others do."""
    servers = list(servers)
    for server in servers:
        server.server.request_stop()
    for server in servers:
        server.thread.join(timeout=30)


@contextlib.contextmanager
def serve(app: Any, port: int | None = None) -> Iterator[ThreadServer]:
    server = ThreadServer(app, port).start()
    try:
        yield server
    finally:
        server.stop()


class Proc(Protocol):
    """What the tests use of a child process (``subprocess.Popen`` has it)."""

    pid: int

    @property
    def returncode(self) -> int | None: ...

    def poll(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int: ...


def wait_http(url: str, *, timeout: float = 30.0, proc: Proc | None = None) -> None:
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
        self.proc: Proc | None = None

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


def _run_ngsp(args: list[str], env: dict[str, str], log: str) -> None:
    """In a process forked from the preloaded one: ``ngsp <args>``, as a new process
    would run it (its own session, the given environment, output to ``log``)."""
    os.setsid()
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)  # multiprocessing closed stdin; uvicorn hands fd 0 to its workers
    os.close(null)
    sys.stdin = open(0, closefd=False)  # noqa: SIM115 - the process's own stdin
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    os.environ.clear()
    os.environ.update(env)
    sys.argv = ["ngsp", *args]
    from ngsp.cli import main

    main()


_PRELOADED: list[multiprocessing.context.ForkServerContext] = []


def _preloaded() -> multiprocessing.context.ForkServerContext:
    if not _PRELOADED:
        context = multiprocessing.get_context("forkserver")
        # What the commands import as they start, too: the hub and gateway apps.
        context.set_forkserver_preload(["ngsp.cli", "national_hub.app", "gateway.app", __name__])
        _PRELOADED.append(context)
    return _PRELOADED[0]


class _Forked:
    """A ``multiprocessing`` process seen as a ``Proc``."""

    def __init__(self, process: BaseProcess) -> None:
        self._process = process
        assert process.pid is not None
        self.pid = process.pid

    @property
    def returncode(self) -> int | None:
        return self._process.exitcode

    def poll(self) -> int | None:
        return self._process.exitcode

    def wait(self, timeout: float | None = None) -> int:
        self._process.join(timeout)
        if self._process.exitcode is None:
            raise subprocess.TimeoutExpired(["ngsp"], timeout or 0.0)
        return self._process.exitcode


class NgspProcess(ChildProcess):
    """``ngsp <args>`` in its own process group, forked from a process that has already
    imported the platform.

    A new interpreter spends about 2.5 s importing it before the command starts; the
    crash test starts the hub eleven times a database. The forked process is otherwise
    what ``python -m ngsp`` would be: its own session (so ``kill`` and ``stop`` reach it
    and its workers), its own environment, its output in ``log``, its exit status.
    """

    def __init__(self, *args: str, env: dict[str, str] | None = None, log: Path) -> None:
        super().__init__(["ngsp", *args], env=env, log=log)

    def start(self) -> NgspProcess:
        process = _preloaded().Process(
            target=_run_ngsp, args=(self.args[1:], self.env, str(self.log_path)), name="ngsp"
        )
        process.start()
        self.proc = _Forked(process)
        return self
