"""Web views on the worker's port: ``/metrics`` (Prometheus) and ``/healthz`` (readiness)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp.web import Response
from prometheus_client import CONTENT_TYPE_LATEST

if TYPE_CHECKING:
    from streams.app import Worker


def register(worker: Worker) -> None:
    app = worker.app

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        body = await worker.endpoint.render()
        return Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        ready = worker.ready and not app.rebalancing
        return web.json({"ready": ready, "partitions": sorted(worker.store.states)},
                        status=200 if ready else 503)
