"""Rollouts over HTTP (docs/protocol.md, "Releases and rollouts"; docs/fleet.md): start one, follow
it, pause, resume or abort it. The work itself is `releases/runtime.py`'s."""

from __future__ import annotations

import logging
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from pulsewire.app.access import AdminDep, ReaderDep
from pulsewire.app.services import ReadsDep, RolloutsDep
from pulsewire.http.responses import ADMIN, READ, answers
from pulsewire.protocol.rules import DEVICE_ID_PATTERN
from pulsewire.releases import rollout as machine
from pulsewire.releases.bundle import VERSION_PATTERN
from pulsewire.releases.rollout import Rollout
from pulsewire.releases.runtime import RolloutNotFound
from pulsewire.storage import releases as store

log = logging.getLogger("pulsewire.rollouts")

router = APIRouter(tags=["rollouts"])

MAX_DEVICES = 10_000  # in one request's list; "*" takes every device
MAX_LISTED = 1000
DeviceList = Annotated[
    list[Annotated[str, Field(pattern=DEVICE_ID_PATTERN)]], Field(min_length=1, max_length=MAX_DEVICES)
]
RolloutId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="Rollout id")]


class RolloutIn(BaseModel):
    # The device id rule has a lookahead (not "." or ".."), which pydantic's default regex engine lacks.
    model_config = ConfigDict(extra="forbid", regex_engine="python-re")

    version: str = Field(pattern=VERSION_PATTERN, description="A stored release.")
    devices: DeviceList | Literal["*"] = Field(description='Device ids, or "*" for every registered device.')
    canary_percent: int = Field(
        0, ge=0, le=100, description="Share of the devices updated first (rounded up); 0: all at once."
    )


class RolloutDeviceOut(BaseModel):
    device: str
    canary: bool
    step: str = Field(description="queued, downloading, installed, trial, confirmed, failed or rolled_back")
    reason: str | None = Field(description="Why it failed or rolled back (the board's words), or what happened.")
    attempts: int = Field(description="update commands sent to it.")
    updated_ms: int


class RolloutSummaryOut(BaseModel):
    id: str
    version: str
    state: str = Field(description="running, paused, halted, aborted or finished")
    reason: str | None = Field(description="Why it halted (the canary and its reason), or aborted.")
    canary_percent: int
    created_ms: int
    updated_ms: int
    counts: dict[str, int] = Field(description="Devices at each step.")


class RolloutOut(RolloutSummaryOut):
    devices: list[RolloutDeviceOut]


def _out(r: Rollout) -> RolloutOut:
    return RolloutOut.model_validate(machine.to_json(r))


@router.post(
    "/api/rollouts",
    status_code=201,
    response_model=RolloutOut,
    dependencies=[AdminDep],
    summary="Start a rollout of a release to devices, canaries first",
    responses=answers(
        400,
        *ADMIN,
        503,
        words={
            400: "invalid body, no such release, or unknown devices: `detail` says which",
            409: "some of the devices are in another active rollout",
        },
    ),
)
async def start_rollout(body: RolloutIn, rollouts: RolloutsDep) -> RolloutOut:
    ids = None if body.devices == "*" else sorted(set(body.devices))
    try:
        started = await rollouts.begin(body.version, ids, body.canary_percent)
    except store.ReleaseNotFound:
        raise HTTPException(400, f"version: no release {body.version!r}; upload it first") from None
    except store.UnknownDevices as exc:
        raise HTTPException(400, f"devices: unknown device(s) {', '.join(exc.ids)[:300]}") from None
    except store.DevicesBusy as exc:
        raise HTTPException(409, f"devices already in an active rollout: {str(exc)[:300]}") from None
    return _out(started)


@router.get(
    "/api/rollouts",
    response_model=list[RolloutSummaryOut],
    dependencies=[ReaderDep],
    summary="The latest rollouts, newest first, without their devices",
    responses=answers(400, *READ),
)
async def list_rollouts(
    reads: ReadsDep,
    last: Annotated[int, Query(ge=1, le=MAX_LISTED, description="How many of the latest rollouts.")] = 20,
) -> list[RolloutSummaryOut]:
    found = await run_in_threadpool(reads.rollouts, last)
    return [RolloutSummaryOut.model_validate(machine.summary_json(r)) for r in found]


@router.get(
    "/api/rollouts/{rollout_id}",
    response_model=RolloutOut,
    dependencies=[ReaderDep],
    summary="A rollout's state and each device's step",
    responses=answers(400, *READ, words={404: "no such rollout"}),
)
async def get_rollout(rollout_id: RolloutId, reads: ReadsDep) -> RolloutOut:
    found = await run_in_threadpool(reads.rollout, rollout_id)
    if found is None:
        raise HTTPException(404, f"no rollout {rollout_id!r}")
    return _out(found)


_CONTROL_ANSWERS = answers(
    400, *ADMIN, 503, words={404: "no such rollout", 409: "its state does not allow this (`detail` says which it is)"}
)


async def _control(rollouts: RolloutsDep, rollout_id: str, action: str) -> RolloutOut:
    act = {"pause": machine.pause, "resume": machine.resume, "abort": machine.abort}[action]
    try:
        return _out(await rollouts.control(rollout_id, act))
    except RolloutNotFound:
        raise HTTPException(404, f"no rollout {rollout_id!r}") from None
    except machine.Conflict as exc:
        raise HTTPException(409, exc.detail) from None


@router.post(
    "/api/rollouts/{rollout_id}/pause",
    response_model=RolloutOut,
    dependencies=[AdminDep],
    summary="Pause a running rollout: no more update commands until resumed",
    responses=_CONTROL_ANSWERS,
)
async def pause_rollout(rollout_id: RolloutId, rollouts: RolloutsDep) -> RolloutOut:
    return await _control(rollouts, rollout_id, "pause")


@router.post(
    "/api/rollouts/{rollout_id}/resume",
    response_model=RolloutOut,
    dependencies=[AdminDep],
    summary="Resume a paused rollout, or go on with a halted one despite its canary",
    responses=_CONTROL_ANSWERS,
)
async def resume_rollout(rollout_id: RolloutId, rollouts: RolloutsDep) -> RolloutOut:
    return await _control(rollouts, rollout_id, "resume")


@router.post(
    "/api/rollouts/{rollout_id}/abort",
    response_model=RolloutOut,
    dependencies=[AdminDep],
    summary="Abort a rollout: no more update commands (devices already updating go on)",
    responses=_CONTROL_ANSWERS,
)
async def abort_rollout(rollout_id: RolloutId, rollouts: RolloutsDep) -> RolloutOut:
    return await _control(rollouts, rollout_id, "abort")
