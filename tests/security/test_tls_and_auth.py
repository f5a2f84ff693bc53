"""A worker that talks to Kafka only over TLS and serves /metrics over HTTPS with basic auth.

Real processes: tansu behind a TLS front (see ``tls.py``), Redis, ``leadline worker`` and
``leadline send``, all configured through the ``LEADLINE_*`` security settings.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from leadline.embedded.processes import parse_metrics
from leadline.embedded.services import Service, free_port, tansu_binary
from leadline.streams.web import basic_auth_header
from reliability.harness import fetch
from tests.security.tls import TlsProxy, make_certificate
from tests.support.compare import mismatches
from tests.support.oracle import Truth, generate
from tests.support.worker import ROOT, Pipeline, WorkerProcess, wait_for

pytestmark = pytest.mark.slow

USER = "prometheus"


@dataclass
class Secured:
    pipeline: Pipeline
    worker: WorkerProcess
    proxy: TlsProxy
    cert: Path
    password: str
    client_tls: ssl.SSLContext
    truth: Truth

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.worker.port}{path}"

    def get(self, path: str, auth: str | None = None) -> tuple[int, bytes]:
        headers = {"Authorization": auth} if auth else {}
        return fetch(self.url(path), headers=headers, context=self.client_tls, timeout=5)


@pytest.fixture(scope="module")
def secured(redis_server: Service, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    work = tmp_path_factory.mktemp("tls")
    cert, key = make_certificate(work)
    inner, outer = free_port(), free_port()
    broker = Service("broker (tansu, behind TLS)", [
        str(tansu_binary()), "broker", "--listener-url", f"tcp://127.0.0.1:{inner}",
        "--advertised-listener-url", f"tcp://127.0.0.1:{outer}"], inner, work / "tansu.log")
    proxy = TlsProxy(outer, inner, cert, key)
    password = secrets.token_urlsafe(16)
    front = Service("TLS front", [], outer, work / "unused.log")  # what clients are given
    pipeline = Pipeline(front, redis_server, work, extra_env={
        "LEADLINE_KAFKA_SECURITY_PROTOCOL": "SSL", "LEADLINE_KAFKA_SSL_CAFILE": str(cert),
        "LEADLINE_WEB_CERT": str(cert), "LEADLINE_WEB_KEY": str(key),
        "LEADLINE_METRICS_USERNAME": USER, "LEADLINE_METRICS_PASSWORD": password,
    })
    client_tls = ssl.create_default_context(cafile=str(cert))
    with broker:
        proxy.start()
        assert proxy.ready.wait(5)
        worker = pipeline.worker().start()
        try:
            s = Secured(pipeline, worker, proxy, cert, password, client_tls, Truth())

            def ready() -> bool:
                assert worker.proc is not None and worker.proc.poll() is None, worker.log_tail()
                try:
                    return s.get("/healthz")[0] == 200
                except OSError:
                    return False

            wait_for(ready, timeout=60, interval=0.25, what="worker ready over TLS")
            yield s
        finally:
            worker.stop()
            proxy.stop()


def _send_cli(s: Secured, lines: list[bytes]) -> subprocess.CompletedProcess[bytes]:
    env = s.pipeline.env(free_port(), "send")
    return subprocess.run([sys.executable, "-m", "leadline.cli", "send", "-"],
                          input=b"\n".join(lines) + b"\n", env=env, capture_output=True,
                          timeout=60, cwd=str(ROOT))


def test_events_flow_over_tls_and_equal_the_oracle(secured: Secured) -> None:
    messages, truth = generate(time.time(), seed=79, users=500, events=3000)
    result = _send_cli(secured, [v for _, v in messages])  # `leadline send`, over TLS too
    assert result.returncode == 0, result.stderr.decode()
    auth = basic_auth_header(USER, secured.password)

    def exact() -> bool:
        status, body = secured.get("/metrics", auth)
        return status == 200 and not mismatches(parse_metrics(body.decode()), truth, time.time())

    wait_for(exact, timeout=60, what="metrics over HTTPS to equal the oracle")
    assert secured.proxy.tls_connections >= 3  # worker consumer + producer, admin, sender


def test_the_broker_port_refuses_clear_text_clients(secured: Secured) -> None:
    async def bootstrap() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=secured.pipeline.bootstrap,
                                    request_timeout_ms=3000)
        try:
            await admin.start()
        finally:
            await admin.close()

    with pytest.raises(Exception, match=r"bootstrap|Unable|connect"):
        asyncio.run(bootstrap())


def test_metrics_need_credentials_and_healthz_stays_open(secured: Secured) -> None:
    status, _ = secured.get("/metrics")
    assert status == 401
    request = urllib.request.Request(secured.url("/metrics"))
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request, context=secured.client_tls, timeout=5)
    assert err.value.headers["WWW-Authenticate"].startswith("Basic")
    err.value.close()
    assert secured.get("/metrics", basic_auth_header(USER, "wrong"))[0] == 401
    assert secured.get("/metrics", basic_auth_header("someone", secured.password))[0] == 401
    status, body = secured.get("/metrics", basic_auth_header(USER, secured.password))
    assert status == 200 and b"leadline_build_info" in body
    assert secured.get("/healthz")[0] == 200


def test_the_web_port_is_https_only_and_faust_pages_are_off(secured: Secured) -> None:
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
        urllib.request.urlopen(f"http://127.0.0.1:{secured.worker.port}/healthz", timeout=5)
    auth = basic_auth_header(USER, secured.password)
    for page in ("/table/state/", "/router/state/x/"):
        assert secured.get(page, auth)[0] == 404, page


def test_the_password_is_never_logged(secured: Secured) -> None:
    log = secured.worker.log_path.read_text(errors="replace")
    assert secured.password not in log
    assert os.environ.get("LEADLINE_METRICS_PASSWORD") is None  # set only for the worker
