"""The rollout state machine, with no I/O (docs/fleet.md, "Rollouts").

A rollout takes one release to a set of devices. Each device (a `Target`) moves through steps:

    queued -> downloading -> installed -> trial -> confirmed
                         \\-> failed      \\-> rolled_back

`queued`: waiting for its turn or for the device to connect. `downloading`: the `update` command
was sent. `installed`: the device answered `result` ok (the release is staged; it reboots into
it). `trial`: its hello says it runs the new version on trial. `confirmed`: it runs the new version
for good (its hello says so, or it streams readings after its trial hello: the board confirms
once it has its welcome). `failed`: it answered `ok:false`, came back on the old version
MAX_ATTEMPTS times, or stayed at downloading, installed or trial longer than the step timeout
(`expire`); a failed device whose hello later shows it running the release moves on from there.
`rolled_back`: it went back to the old version by itself (hello's `boot.rolled_back_from`), with
the board's reason.

With a canary share, the first devices by id go first; the rest are sent `update` only once every
canary is confirmed. A canary that fails or rolls back halts the rollout: nobody else is touched.

Every function returns a new `Rollout` (frozen); `changed` compares two to say what to store.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, replace

from pulsewire.protocol.device import BOOT_TRIAL, Boot

QUEUED = "queued"
DOWNLOADING = "downloading"
INSTALLED = "installed"
TRIAL = "trial"
CONFIRMED = "confirmed"
FAILED = "failed"
ROLLED_BACK = "rolled_back"
STEPS = (QUEUED, DOWNLOADING, INSTALLED, TRIAL, CONFIRMED, FAILED, ROLLED_BACK)
DONE_STEPS = (CONFIRMED, FAILED, ROLLED_BACK)
BAD_STEPS = (FAILED, ROLLED_BACK)
UNDER_WAY = (DOWNLOADING, INSTALLED, TRIAL)  # the device has the update: only it can move the step

RUNNING = "running"
PAUSED = "paused"
HALTED = "halted"  # a canary failed or rolled back; resume goes on anyway, abort ends it
ABORTED = "aborted"
FINISHED = "finished"  # every device is confirmed, failed or rolled back
STATES = (RUNNING, PAUSED, HALTED, ABORTED, FINISHED)
ACTIVE_STATES = (RUNNING, PAUSED, HALTED)  # its devices are taken and its release is in use

# `update` sent this many times to a device that keeps coming back on its old version: failed.
MAX_ATTEMPTS = 3
MAX_REASON = 200


class Conflict(Exception):
    """The rollout's state does not allow this (pause a finished rollout); `detail` says why (a 409's)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Target:
    device: str
    canary: bool
    step: str = QUEUED
    reason: str | None = None
    attempts: int = 0  # `update` commands sent
    updated_ms: int = 0


@dataclass(frozen=True, slots=True)
class Rollout:
    id: str
    version: str
    canary_percent: int
    state: str
    targets: tuple[Target, ...]  # by device id
    created_ms: int
    updated_ms: int
    reason: str | None = None  # why it halted or was aborted
    forced: bool = False  # resumed after a halt: failures no longer halt it

    def target(self, device: str) -> Target | None:
        for t in self.targets:
            if t.device == device:
                return t
        return None

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    def counts(self) -> dict[str, int]:
        """How many devices are at each step (every step listed, zeros included)."""
        found = Counter(t.step for t in self.targets)
        return {step: found.get(step, 0) for step in STEPS}


def canary_count(devices: int, percent: int) -> int:
    """Canaries of `devices` at `percent`: rounded up, at least one when percent > 0."""
    if percent <= 0 or devices == 0:
        return 0
    return min(devices, max(1, math.ceil(devices * percent / 100)))


def plan(rollout_id: str, version: str, firmware: Mapping[str, str | None], canary_percent: int, now: int) -> Rollout:
    """A new running rollout of `version` to the devices of `firmware` (device id -> the version it
    runs now). The first devices by id are the canaries; a device already on `version` is confirmed."""
    ids = sorted(firmware)
    canaries = set(ids[: canary_count(len(ids), canary_percent)])
    targets = tuple(
        Target(d, d in canaries, CONFIRMED, f"already running {version}", 0, now)
        if firmware[d] == version
        else Target(d, d in canaries, updated_ms=now)
        for d in ids
    )
    return settle(Rollout(rollout_id, version, canary_percent, RUNNING, targets, now, now), now)


def due(rollout: Rollout) -> list[str]:
    """The devices to send `update` now: the queued canaries while the canary stage is open, then the rest."""
    if rollout.state != RUNNING:
        return []
    canaries = [t for t in rollout.targets if t.canary]
    if any(t.step not in DONE_STEPS for t in canaries):
        return [t.device for t in canaries if t.step == QUEUED]
    return [t.device for t in rollout.targets if t.step == QUEUED]


def sent(rollout: Rollout, device: str, now: int) -> Rollout:
    """The `update` command went out to `device`."""
    t = rollout.target(device)
    if t is None or t.step != QUEUED:
        return rollout
    return _move(rollout, replace(t, step=DOWNLOADING, reason=None, attempts=t.attempts + 1), now)


def result(rollout: Rollout, device: str, ok: bool, detail: str | None, now: int) -> Rollout:
    """The device's `result` to its `update`: staged (installed), or refused (failed)."""
    t = rollout.target(device)
    if t is None or t.step != DOWNLOADING:
        return rollout
    if ok:
        return _move(rollout, replace(t, step=INSTALLED, reason=_short(detail)), now)
    return _move(rollout, replace(t, step=FAILED, reason=_short(detail) or "the device refused the update"), now)


def hello(rollout: Rollout, device: str, fw: str | None, boot: Boot | None, now: int) -> Rollout:
    """The device said hello: where it stands, from its version and its `boot` (docs/protocol.md)."""
    t = rollout.target(device)
    if t is None or t.step == ROLLED_BACK or (t.step == FAILED and fw != rollout.version):
        return rollout
    version = rollout.version
    if boot is not None and _went_back(rollout, t, boot):
        why = boot.reason or f"the board went back to {fw or 'its previous version'}"
        return _move(rollout, replace(t, step=ROLLED_BACK, reason=_short(why)), now)
    if t.step == CONFIRMED:
        return rollout
    if fw == version:
        if boot is not None and boot.state == BOOT_TRIAL:
            return _move(rollout, replace(t, step=TRIAL, reason=None), now)
        return _move(rollout, replace(t, step=CONFIRMED, reason=None), now)
    if t.step == TRIAL:  # on trial before, on another version now, and it did not say why
        return _move(rollout, replace(t, step=ROLLED_BACK, reason=f"came back on {fw or 'an unknown version'}"), now)
    if t.step in (DOWNLOADING, INSTALLED):  # the update did not take (a cut mid-download, a lost stage)
        if t.attempts >= MAX_ATTEMPTS:
            why = f"still on {fw or 'an unknown version'} after {t.attempts} attempts"
            return _move(rollout, replace(t, step=FAILED, reason=why), now)
        why = f"came back on {fw or 'an unknown version'}; update sent again"
        return _move(rollout, replace(t, step=QUEUED, reason=why), now)
    return rollout


def _went_back(rollout: Rollout, t: Target, boot: Boot) -> bool:
    """Whether the hello's `rolled_back_from` is this rollout's release going back.

    A board repeats it in every hello until its next update is staged, so one from an earlier
    attempt must not count: it does when the board names this rollout (`boot.rollout`, echoed from
    the `update` that staged it; then even a board whose `result` was lost), and, from firmware
    that does not name it, once the release is known to be staged (installed, trial)."""
    if boot.rolled_back_from != rollout.version or t.step not in UNDER_WAY:
        return False
    if boot.rollout is not None:
        return boot.rollout == rollout.id
    return t.step in (INSTALLED, TRIAL)


def expire(rollout: Rollout, now: int, timeout_ms: int) -> Rollout:
    """Fail the devices that have been under way (downloading, installed, trial) for `timeout_ms`
    with no word: a board that went silent must not hold a canary stage, or the rollout, open."""
    after = rollout
    for t in rollout.targets:
        if t.step in UNDER_WAY and now - t.updated_ms >= timeout_ms:
            why = _TIMED_OUT[t.step] % (timeout_ms // 1000)
            after = _move(after, replace(t, step=FAILED, reason=why), now)
    return after


_TIMED_OUT = {
    DOWNLOADING: "no result to the update in %d s",
    INSTALLED: "staged, but no hello on the new version in %d s",
    TRIAL: "on trial, but not confirmed in %d s",
}


def streaming(rollout: Rollout, device: str, now: int) -> Rollout:
    """The device sent readings: one on trial has had its welcome, so the board has confirmed."""
    t = rollout.target(device)
    if t is None or t.step != TRIAL:
        return rollout
    return _move(rollout, replace(t, step=CONFIRMED, reason=None), now)


def pause(rollout: Rollout, now: int) -> Rollout:
    if rollout.state != RUNNING:
        raise Conflict(f"rollout {rollout.id} is {rollout.state}; only a running rollout can be paused")
    return replace(rollout, state=PAUSED, updated_ms=now)


def resume(rollout: Rollout, now: int) -> Rollout:
    """Go on after a pause, or after a halt (then failures no longer halt it)."""
    if rollout.state not in (PAUSED, HALTED):
        raise Conflict(f"rollout {rollout.id} is {rollout.state}; only a paused or halted rollout can be resumed")
    forced = rollout.forced or rollout.state == HALTED
    return settle(replace(rollout, state=RUNNING, forced=forced, reason=None, updated_ms=now), now)


def abort(rollout: Rollout, now: int) -> Rollout:
    """No more `update` commands; devices already updating go on (they cannot be called back)."""
    if not rollout.active:
        raise Conflict(f"rollout {rollout.id} is {rollout.state} already")
    return replace(rollout, state=ABORTED, reason="aborted", updated_ms=now)


def settle(rollout: Rollout, now: int) -> Rollout:
    """The rollout's state from its devices' steps: halted by a bad canary, finished when all are done."""
    state, reason = rollout.state, rollout.reason
    if state == RUNNING and not rollout.forced:
        bad = [t for t in rollout.targets if t.canary and t.step in BAD_STEPS]
        if bad:
            state = HALTED
            reason = _short(f"canary {bad[0].device} {bad[0].step}: {bad[0].reason or 'no reason given'}")
    if state in ACTIVE_STATES and all(t.step in DONE_STEPS for t in rollout.targets):
        state = FINISHED
    if (state, reason) == (rollout.state, rollout.reason):
        return rollout
    return replace(rollout, state=state, reason=reason, updated_ms=now)


def changed(before: Rollout, after: Rollout) -> list[Target]:
    """The targets whose step, reason or attempts differ."""
    old = {t.device: t for t in before.targets}
    return [t for t in after.targets if old.get(t.device) != t]


def _move(rollout: Rollout, target: Target, now: int) -> Rollout:
    target = replace(target, updated_ms=now)
    targets = tuple(target if t.device == target.device else t for t in rollout.targets)
    return settle(replace(rollout, targets=targets, updated_ms=now), now)


def _short(text: str | None) -> str | None:
    return text[:MAX_REASON] if text else None


def target_json(t: Target) -> dict[str, object]:
    return {
        "device": t.device,
        "canary": t.canary,
        "step": t.step,
        "reason": t.reason,
        "attempts": t.attempts,
        "updated_ms": t.updated_ms,
    }


def summary_json(r: Rollout) -> dict[str, object]:
    """The rollout without its devices: what a live message and a listing carry."""
    return {
        "id": r.id,
        "version": r.version,
        "state": r.state,
        "reason": r.reason,
        "canary_percent": r.canary_percent,
        "created_ms": r.created_ms,
        "updated_ms": r.updated_ms,
        "counts": r.counts(),
    }


def to_json(r: Rollout) -> dict[str, object]:
    """The rollout as `GET /api/rollouts/{id}` answers it: its summary and every device's step."""
    return {**summary_json(r), "devices": [target_json(t) for t in r.targets]}
