"""``ngsp up``: start the network's services in order, report them, stop them together."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import httpx

__all__ = ["Service", "run_network"]

_START_TIMEOUT = 180.0


@dataclass
class Service:
    name: str
    command: list[str]
    url: str
    ready_path: str
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)


class _Stop(Exception):
    pass


def _wait_ready(service: Service) -> None:
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        assert service.process is not None
        if service.process.poll() is not None:
            raise RuntimeError(
                f"{service.name} exited with {service.process.returncode}; see its log"
            )
        try:
            if httpx.get(service.url + service.ready_path, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{service.name} not ready after {_START_TIMEOUT:.0f} s")


def _stop_all(services: list[Service]) -> None:
    for service in reversed(services):
        proc = service.process
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for service in reversed(services):
        proc = service.process
        if proc is None:
            continue
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def run_network(services: list[Service], *, data_dir: Path) -> int:
    """Start each service once the one before it is ready; block until a signal or a crash."""

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        raise _Stop(signal.Signals(signum).name)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    logs = data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    code = 0
    try:
        for service in services:
            print(f"starting {service.name} ...", flush=True)
            with open(logs / f"{service.name}.log", "ab") as log_file:
                service.process = subprocess.Popen(
                    service.command,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            _wait_ready(service)
        print("\nngsp-sim is up:")
        for service in services:
            print(f"  {service.name:8s} {service.url}")
        print(f"  credentials: {(data_dir / 'credentials.json').resolve()}")
        print(f"  logs:        {logs.resolve()}/")
        print("Ctrl-C stops everything.\n", flush=True)
        while True:
            for service in services:
                assert service.process is not None
                if service.process.poll() is not None:
                    print(f"{service.name} exited with {service.process.returncode}; stopping")
                    return 1
            time.sleep(0.5)
    except _Stop as stop:
        print(f"\n{stop}: stopping ...", flush=True)
    except RuntimeError as exc:
        print(f"ngsp up failed: {exc}", flush=True)
        code = 1
    finally:
        _stop_all(services)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return code
