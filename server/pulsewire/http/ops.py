"""Liveness, Prometheus metrics, and the admin-key check the dashboard uses before admin actions."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from pulsewire.app.access import AdminDep
from pulsewire.app.services import MetricsDep, PresenceDep, WriterDep
from pulsewire.http.responses import ADMIN, answers

router = APIRouter(tags=["operations"])


@router.head("/healthz", include_in_schema=False)
@router.get(
    "/healthz",
    summary="Liveness: 200 while the server and its writer run, 503 when the writer has stopped",
    responses={503: {"description": "the writer has stopped: readings cannot be stored"}},
)
def healthz(writer: WriterDep, presence: PresenceDep) -> JSONResponse:
    ok = writer.running
    body = {"status": "ok" if ok else "writer stopped", "devices_online": len(presence)}
    return JSONResponse(body, status_code=200 if ok else 503)


@router.get("/metrics", summary="Prometheus text metrics", response_class=Response)
def metrics(instruments: MetricsDep) -> Response:
    return Response(instruments.render(), media_type=CONTENT_TYPE_LATEST)


@router.get(
    "/api/admin/check",
    dependencies=[AdminDep],
    summary="Whether the admin key is right: 200 if so, 401 without a key, 403 with a wrong one",
    responses=answers(*ADMIN),
)
def admin_check() -> dict[str, bool]:
    return {"admin": True}
