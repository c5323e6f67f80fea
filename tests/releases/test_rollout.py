"""The rollout state machine on plain values (pulsewire.releases.rollout): no server, no I/O."""

from __future__ import annotations

import pytest

from pulsewire.protocol.device import Boot
from pulsewire.releases import rollout as m

V = "0.4.0"
OLD = "0.3.1"
T0 = 1_000


def fleet(n: int, fw: str | None = OLD) -> dict[str, str | None]:
    return {f"dev-{i:02d}": fw for i in range(n)}


def steps(r: m.Rollout) -> dict[str, str]:
    return {t.device: t.step for t in r.targets}


def update(r: m.Rollout, device: str) -> m.Rollout:
    """`update` sent and staged, then the board boots it on trial and streams: confirmed."""
    r = m.sent(r, device, T0)
    r = m.result(r, device, True, None, T0)
    r = m.hello(r, device, V, Boot("trial", previous=OLD), T0)
    assert r.target(device).step == m.TRIAL  # type: ignore[union-attr]
    return m.streaming(r, device, T0)


def test_canaries_are_rounded_up_and_at_least_one() -> None:
    assert [m.canary_count(10, p) for p in (0, 1, 10, 20, 25, 100)] == [0, 1, 1, 2, 3, 10]
    assert m.canary_count(0, 50) == 0
    assert m.canary_count(3, 100) == 3


def test_ten_devices_twenty_percent_a_failing_canary_halts_and_the_other_eight_never_get_update() -> None:
    r = m.plan("ro_1", V, fleet(10), 20, T0)
    canaries = [t.device for t in r.targets if t.canary]
    assert canaries == ["dev-00", "dev-01"] and r.state == m.RUNNING
    assert m.due(r) == canaries  # only the canaries at first
    ever_sent = set()
    for device in m.due(r):
        r = m.sent(r, device, T0)
        ever_sent.add(device)
    assert m.due(r) == []  # the rest wait for the canaries
    r = update(r, "dev-00")
    assert m.due(r) == []  # one canary confirmed is not enough
    r = m.sent(r, "dev-01", T0)  # no-op: not queued any more
    r = m.result(r, "dev-01", True, "staged", T0)
    r = m.hello(r, "dev-01", OLD, Boot("confirmed", rolled_back_from=V, reason="ImportError: no module named x"), T0)
    assert r.state == m.HALTED
    assert r.reason == "canary dev-01 rolled_back: ImportError: no module named x"
    assert r.target("dev-01") == m.Target("dev-01", True, m.ROLLED_BACK, "ImportError: no module named x", 1, T0)
    assert m.due(r) == []
    # Whatever else happens, nobody else is sent an update while it is halted.
    for i in range(2, 10):
        r = m.hello(r, f"dev-{i:02d}", OLD, None, T0)
        ever_sent |= set(m.due(r))
    assert ever_sent == {"dev-00", "dev-01"}
    assert [steps(r)[f"dev-{i:02d}"] for i in range(2, 10)] == [m.QUEUED] * 8
    assert r.counts() == {
        "queued": 8,
        "downloading": 0,
        "installed": 0,
        "trial": 0,
        "confirmed": 1,
        "failed": 0,
        "rolled_back": 1,
    }


def test_a_canary_refusing_the_update_halts_too() -> None:
    r = m.plan("ro_1", V, fleet(5), 20, T0)
    r = m.sent(r, "dev-00", T0)
    r = m.result(r, "dev-00", False, "sha256 mismatch: session.mpy", T0)
    assert r.target("dev-00").step == m.FAILED  # type: ignore[union-attr]
    assert (r.state, r.reason) == (m.HALTED, "canary dev-00 failed: sha256 mismatch: session.mpy")
    assert m.due(r) == []


def test_confirmed_canaries_open_the_rest_and_the_rollout_finishes() -> None:
    r = m.plan("ro_1", V, fleet(5), 40, T0)
    for device in m.due(r):
        r = update(r, device)
    rest = m.due(r)
    assert rest == ["dev-02", "dev-03", "dev-04"]
    for device in rest:
        r = update(r, device)
    assert r.state == m.FINISHED and set(steps(r).values()) == {m.CONFIRMED}


def test_a_failure_outside_the_canaries_does_not_halt() -> None:
    r = m.plan("ro_1", V, fleet(3), 0, T0)
    assert m.due(r) == ["dev-00", "dev-01", "dev-02"]  # no canary: everyone at once
    for device in m.due(r):
        r = m.sent(r, device, T0)
    r = m.result(r, "dev-00", False, None, T0)
    assert r.target("dev-00").reason == "the device refused the update"  # type: ignore[union-attr]
    assert r.state == m.RUNNING
    for device in ("dev-01", "dev-02"):
        r = m.result(r, device, True, None, T0)
        r = m.hello(r, device, V, None, T0)  # firmware without `boot`: on the version means confirmed
    assert r.state == m.FINISHED
    assert steps(r) == {"dev-00": m.FAILED, "dev-01": m.CONFIRMED, "dev-02": m.CONFIRMED}


def test_a_device_already_on_the_version_is_confirmed_at_once() -> None:
    r = m.plan("ro_1", V, {"a": V, "b": OLD}, 0, T0)
    assert steps(r) == {"a": m.CONFIRMED, "b": m.QUEUED}
    assert r.target("a").reason == f"already running {V}"  # type: ignore[union-attr]
    assert m.due(r) == ["b"]
    assert m.plan("ro_2", V, {"a": V}, 0, T0).state == m.FINISHED


def test_a_device_back_on_its_old_version_mid_update_is_sent_again_then_failed() -> None:
    r = m.plan("ro_1", V, {"a": OLD}, 0, T0)
    for attempt in range(1, m.MAX_ATTEMPTS + 1):
        assert m.due(r) == ["a"]
        r = m.sent(r, "a", T0)
        assert r.target("a").attempts == attempt  # type: ignore[union-attr]
        r = m.hello(r, "a", OLD, None, T0)  # power cut during the download: back on the old version
    t = r.target("a")
    assert t is not None and t.step == m.FAILED
    assert t.reason == f"still on {OLD} after {m.MAX_ATTEMPTS} attempts"
    assert r.state == m.FINISHED


def test_trial_then_back_on_the_old_version_without_a_word_is_a_rollback() -> None:
    r = m.plan("ro_1", V, {"a": OLD}, 0, T0)
    r = m.result(m.sent(r, "a", T0), "a", True, None, T0)
    r = m.hello(r, "a", V, Boot("trial", previous=OLD), T0)
    r = m.hello(r, "a", OLD, None, T0)
    assert r.target("a").step == m.ROLLED_BACK  # type: ignore[union-attr]
    assert r.target("a").reason == f"came back on {OLD}"  # type: ignore[union-attr]


def test_a_hello_saying_confirmed_confirms_and_results_out_of_turn_change_nothing() -> None:
    r = m.plan("ro_1", V, {"a": OLD}, 0, T0)
    assert m.result(r, "a", True, None, T0) is r  # not sent yet
    assert m.streaming(r, "a", T0) is r  # not on trial
    r = m.result(m.sent(r, "a", T0), "a", True, None, T0)
    r = m.hello(r, "a", V, Boot("confirmed", previous=OLD), T0)
    assert r.target("a").step == m.CONFIRMED and r.state == m.FINISHED  # type: ignore[union-attr]
    assert m.hello(r, "a", V, None, T0) is r
    assert m.hello(r, "nobody", V, None, T0) is r


def test_pause_resume_abort() -> None:
    r = m.plan("ro_1", V, fleet(4), 0, T0)
    paused = m.pause(r, T0)
    assert paused.state == m.PAUSED and m.due(paused) == []
    with pytest.raises(m.Conflict, match="only a running rollout can be paused"):
        m.pause(paused, T0)
    resumed = m.resume(paused, T0)
    assert resumed.state == m.RUNNING and len(m.due(resumed)) == 4
    with pytest.raises(m.Conflict, match="only a paused or halted rollout can be resumed"):
        m.resume(resumed, T0)
    aborted = m.abort(resumed, T0)
    assert aborted.state == m.ABORTED and m.due(aborted) == [] and not aborted.active
    with pytest.raises(m.Conflict, match="aborted already"):
        m.abort(aborted, T0)


def test_resuming_a_halted_rollout_goes_on_and_failures_no_longer_halt_it() -> None:
    r = m.plan("ro_1", V, fleet(4), 25, T0)
    r = m.result(m.sent(r, "dev-00", T0), "dev-00", False, "no space", T0)
    assert r.state == m.HALTED
    r = m.resume(r, T0)
    assert r.state == m.RUNNING and r.forced and r.reason is None
    assert m.due(r) == ["dev-01", "dev-02", "dev-03"]


def test_changed_lists_only_the_moved_targets() -> None:
    r = m.plan("ro_1", V, fleet(3), 0, T0)
    after = m.sent(r, "dev-01", T0 + 5)
    assert [t.device for t in m.changed(r, after)] == ["dev-01"]
    assert m.changed(after, after) == []


def test_json_shapes() -> None:
    r = m.plan("ro_1", V, {"a": OLD}, 100, T0)
    out = m.to_json(r)
    assert out["devices"] == [
        {"device": "a", "canary": True, "step": "queued", "reason": None, "attempts": 0, "updated_ms": T0}
    ]
    assert {k: out[k] for k in ("id", "version", "state", "canary_percent")} == {
        "id": "ro_1",
        "version": V,
        "state": "running",
        "canary_percent": 100,
    }


def test_a_rollback_reported_from_an_earlier_attempt_does_not_end_a_new_rollout() -> None:
    """A board that rolled back from V says so in every hello until its next update: a second
    rollout of V tries it again rather than taking that old report as this rollout's answer."""
    r = m.plan("ro_2", V, {"a": OLD}, 0, T0)
    stale = Boot("confirmed", rolled_back_from=V, reason="ImportError: earlier")
    r = m.hello(r, "a", OLD, stale, T0)
    assert steps(r) == {"a": m.QUEUED} and m.due(r) == ["a"]
    r = m.hello(m.sent(r, "a", T0), "a", OLD, stale, T0)  # reconnected mid-download: still that old report
    assert r.target("a").step == m.QUEUED  # type: ignore[union-attr]
    r = m.result(m.sent(r, "a", T0), "a", True, None, T0)
    r = m.hello(r, "a", OLD, Boot("confirmed", rolled_back_from=V, reason="ImportError: now"), T0)
    assert (r.target("a").step, r.target("a").reason) == (m.ROLLED_BACK, "ImportError: now")  # type: ignore[union-attr]


def test_a_board_naming_this_rollout_went_back_even_when_its_result_was_lost() -> None:
    """Staged, then the connection dropped before the result: the board's next hello is its
    rollback. Named by rollout id, it counts while the step is still downloading."""
    r = m.sent(m.plan("ro_2", V, {"a": OLD}, 0, T0), "a", T0)
    earlier = Boot("confirmed", rolled_back_from=V, reason="ImportError: earlier", rollout="ro_1")
    assert m.hello(r, "a", OLD, earlier, T0).target("a").step == m.QUEUED  # type: ignore[union-attr]
    now = Boot("confirmed", rolled_back_from=V, reason="no welcome from the server in 3 boots", rollout="ro_2")
    r = m.hello(r, "a", OLD, now, T0)
    assert (r.target("a").step, r.target("a").reason) == (m.ROLLED_BACK, now.reason)  # type: ignore[union-attr]
    assert r.state == m.FINISHED


def test_a_board_naming_an_earlier_rollout_is_not_taken_as_going_back_once_staged() -> None:
    r = m.result(m.sent(m.plan("ro_2", V, {"a": OLD}, 0, T0), "a", T0), "a", True, None, T0)
    stale = Boot("confirmed", rolled_back_from=V, reason="ImportError: earlier", rollout="ro_1")
    r = m.hello(r, "a", OLD, stale, T0)  # the stage was lost (a cut): sent again, not a rollback
    assert (r.target("a").step, r.target("a").attempts) == (m.QUEUED, 1)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "step, reason",
    [
        (m.DOWNLOADING, "no result to the update in 60 s"),
        (m.INSTALLED, "staged, but no hello on the new version in 60 s"),
        (m.TRIAL, "on trial, but not confirmed in 60 s"),
    ],
)
def test_a_device_silent_too_long_under_way_fails_and_halts_the_canary_stage(step: str, reason: str) -> None:
    r = m.sent(m.plan("ro_1", V, fleet(10), 10, T0), "dev-00", T0)
    if step != m.DOWNLOADING:
        r = m.result(r, "dev-00", True, None, T0)
    if step == m.TRIAL:
        r = m.hello(r, "dev-00", V, Boot("trial", previous=OLD), T0)
    assert m.expire(r, T0 + 59_999, 60_000) is r
    r = m.expire(r, T0 + 60_000, 60_000)
    t = r.target("dev-00")
    assert t is not None and (t.step, t.reason, t.updated_ms) == (m.FAILED, reason, T0 + 60_000)
    assert r.state == m.HALTED and r.reason == f"canary dev-00 failed: {reason}"
    assert m.due(r) == [] and m.expire(r, T0 + 999_999, 60_000) is r  # failed once, not again


def test_queued_devices_never_time_out() -> None:
    r = m.plan("ro_1", V, fleet(3), 0, T0)
    assert m.expire(r, T0 + 10**9, 60_000) is r


def test_a_timed_out_device_that_comes_back_on_the_release_moves_on_from_failed() -> None:
    r = m.expire(m.sent(m.plan("ro_1", V, {"a": OLD, "b": OLD}, 0, T0), "a", T0), T0 + 60_000, 60_000)
    assert r.target("a").step == m.FAILED  # type: ignore[union-attr]
    assert m.hello(r, "a", OLD, None, T0) is r  # still on the old version: failed stays failed
    r = m.hello(r, "a", V, Boot("trial", previous=OLD), T0 + 70_000)
    assert r.target("a").step == m.TRIAL  # type: ignore[union-attr]
    r = m.streaming(r, "a", T0 + 71_000)
    assert (r.target("a").step, r.target("a").reason) == (m.CONFIRMED, None)  # type: ignore[union-attr]
    back = Boot("confirmed", rolled_back_from=V, reason="ImportError: x", rollout="ro_1")
    gone = m.hello(m.result(m.sent(r, "b", T0), "b", True, None, T0), "b", OLD, back, T0)
    assert m.hello(gone, "b", V, None, T0) is gone  # a rollback is the board's own word: it stays
