"""Liveness, readiness, Prometheus metrics, and the admin-key check the dashboard uses before admin actions."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from pulsewire.app.access import AdminDep
from pulsewire.app.services import MetricsDep, Services, ServicesDep
from pulsewire.http.responses import ADMIN, answers
from pulsewire.storage.health import WRITER_STOPPED, StorageHealth

router = APIRouter(tags=["operations"])


# /healthz and /readyz answer their 503 with their own status body, not a refusal's {"detail"}.
_STATUS_BODY = {
    "type": "object",
    "properties": {"status": {"type": "string"}, "cause": {"type": "string"}, "storage": {"type": "object"}},
    "required": ["status", "storage"],
}
_STORAGE_503 = {
    "description": "storage cannot commit: the body says why; Retry-After says when to ask again",
    "headers": {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer", "minimum": 0}}},
    "content": {"application/json": {"schema": _STATUS_BODY}},
}


async def _checked(services: Services) -> StorageHealth:
    """The storage record, after a probe if nothing was committed lately (an idle server)."""
    settings = services.settings
    await services.writer.check_storage(settings.storage_probe_s, settings.storage_probe_timeout_s)
    return services.writer.health


@router.head("/healthz", include_in_schema=False)
@router.get(
    "/healthz",
    summary="Liveness: 200 while the server and its writer run (the body says whether storage commits), "
    "503 when the writer has stopped",
    responses={503: {**_STORAGE_503, "description": "the writer has stopped: readings cannot be stored"}},
)
async def healthz(services: ServicesDep) -> JSONResponse:
    # A storage outage is not a reason to restart the server: it stays 200 and says so in the body.
    health = await _checked(services)
    running = services.writer.running
    status = "writer stopped" if not running else "ok" if health.ready else "storage failing"
    body = {"status": status, "devices_online": len(services.presence), "storage": health.report()}
    if running:
        return JSONResponse(body)
    return JSONResponse(body, status_code=503, headers={"Retry-After": str(health.retry_after_s())})


@router.head("/readyz", include_in_schema=False)
@router.get(
    "/readyz",
    summary="Readiness: 200 while storage commits, 503 with the cause while it cannot",
    responses={503: _STORAGE_503},
)
async def readyz(services: ServicesDep) -> JSONResponse:
    health = await _checked(services)
    report = health.report()
    if not services.writer.running:
        report.update(ready=False, cause=WRITER_STOPPED)
    # In a cluster, Redis being away degrades live fan-out across instances only: the instance stays
    # ready (storage and this instance's dashboards work), and says so.
    extra = {} if services.cluster is None else {"cluster": services.cluster.report()}
    if report["ready"]:
        return JSONResponse({"status": "ready", "storage": report, **extra})
    headers = {"Retry-After": str(health.retry_after_s())}
    body = {"status": "not ready", "cause": report["cause"], "storage": report, **extra}
    return JSONResponse(body, 503, headers=headers)


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
