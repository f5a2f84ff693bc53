"""Web views on the worker's port: ``/metrics`` (Prometheus) and ``/healthz`` (readiness).

With ``LEADLINE_METRICS_USERNAME`` / ``_PASSWORD`` set, ``/metrics`` needs HTTP basic
auth (Prometheus ``basic_auth`` in the scrape config); ``/healthz`` stays open for
orchestrator probes and says nothing but readiness and partition numbers. TLS for both
comes from ``LEADLINE_WEB_CERT`` / ``_KEY`` (see ``streams/security.py``).
"""

from __future__ import annotations

import base64
import hmac
from typing import Any

from aiohttp.web import Response
from prometheus_client import CONTENT_TYPE_LATEST

from leadline.streams.context import WorkerContext

_CHALLENGE = {"WWW-Authenticate": 'Basic realm="leadline", charset="UTF-8"'}


def basic_auth_header(username: str, password: str) -> str:
    """The ``Authorization`` header value a scraper must send."""
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return f"Basic {token}"


def register(worker: WorkerContext) -> None:
    app, settings = worker.app, worker.settings
    expected: bytes | None = None
    if settings.metrics_username is not None and settings.metrics_password is not None:
        expected = basic_auth_header(
            settings.metrics_username, settings.metrics_password.get_secret_value()).encode()

    def allowed(request: Any) -> bool:
        if expected is None:
            return True
        given = request.headers.get("Authorization", "").encode("utf-8", "replace")
        return hmac.compare_digest(given, expected)  # constant time: no timing oracle

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        if not allowed(request):
            return Response(status=401, text="authentication required\n", headers=_CHALLENGE)
        body = await worker.endpoint.render()
        return Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        ready = worker.ready and not app.rebalancing
        return web.json({"ready": ready, "partitions": sorted(worker.store.states)},
                        status=200 if ready else 503)
