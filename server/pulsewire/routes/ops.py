"""Liveness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from pulsewire.routes.deps import ServicesDep

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Liveness: 200 while the server and its writer run")
def healthz(services: ServicesDep) -> dict[str, object]:
    return {"status": "ok", "devices_online": len(services.presence)}


@router.get("/metrics", summary="Prometheus text metrics", response_class=Response)
def metrics(services: ServicesDep) -> Response:
    return Response(services.metrics.render(), media_type=CONTENT_TYPE_LATEST)
