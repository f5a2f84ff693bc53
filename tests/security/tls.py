"""A throw-away certificate, and a TLS front for the embedded broker.

tansu 0.6 declares ``--cert`` / ``--key`` but its command line refuses the two together
("the argument '--cert <CERT>' cannot be used with '--key <KEY>'") and with either
alone it still listens in clear text, so it cannot terminate TLS itself. Here a small
TLS-terminating proxy stands in front of it, and the broker advertises the proxy's
address: every Kafka connection a client makes (bootstrap, then the advertised
listener) is TLS, verified against the test's certificate.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import subprocess
import threading
from pathlib import Path


def make_certificate(directory: Path, name: str = "leadline-test") -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 / localhost: (certificate, key) PEM files."""
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True,
    )
    return cert, key


class TlsProxy(threading.Thread):
    """Accepts TLS on ``listen_port`` and relays the clear bytes to ``target_port``."""

    def __init__(self, listen_port: int, target_port: int, cert: Path, key: Path) -> None:
        super().__init__(daemon=True, name="tls-proxy")
        self.listen_port, self.target_port = listen_port, target_port
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(str(cert), str(key))
        self.tls_connections = 0
        self.ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped: asyncio.Event | None = None

    def run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        # Handshake failures (a clear-text client) are expected: keep them out of stderr.
        self._loop.set_exception_handler(lambda loop, ctx: None)
        server = await asyncio.start_server(self._relay, "127.0.0.1", self.listen_port,
                                            ssl=self.context)
        self.ready.set()
        async with server:
            await self._stopped.wait()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.tls_connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            with contextlib.suppress(Exception):
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def stop(self) -> None:
        if self._loop is not None and self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
        self.join(5)
