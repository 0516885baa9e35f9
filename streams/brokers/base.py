"""What a locally started broker offers, and the helpers both kinds share."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from streams.engine.errors import AdlMonitorError


class BrokerError(AdlMonitorError):
    """A local broker could not be obtained or started."""


def free_port() -> int:
    """A TCP port on the loopback interface that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout_s: float, log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise BrokerError(f"broker exited with {process.returncode}:\n{tail}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise BrokerError(f"broker did not listen on 127.0.0.1:{port} within {timeout_s:.0f} s")


class Broker:
    """A broker process on 127.0.0.1; ``bootstrap`` is what clients connect to."""

    name = "broker"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def command(self) -> list[str]:
        raise NotImplementedError

    def prepare(self) -> None:
        """Anything to do before the process starts (config files, storage format)."""

    def start(self, timeout_s: float = 60.0) -> Self:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.prepare()
        return self._spawn(timeout_s)

    def kill(self) -> None:
        """SIGKILL the broker (a crash: nothing flushed, no controlled shutdown)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        if self._log is not None:
            self._log.close()

    def restart(self, timeout_s: float = 60.0) -> Self:
        """Start again on the same ports and data (after ``kill`` or ``stop``)."""
        return self._spawn(timeout_s)

    def _spawn(self, timeout_s: float) -> Self:
        self._log = self.log_path.open("ab")
        # a session of its own: a Ctrl-C in the terminal reaches the demo, which stops
        # the worker first and the broker last, not the broker under a running worker
        self.process = subprocess.Popen(  # noqa: S603  # our own argv, no shell
            self.command(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
            start_new_session=True,
        )
        wait_for_port(self.port, self.process, timeout_s, self.log_path)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log is not None:
            self._log.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
