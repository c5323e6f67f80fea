"""The firmware, on real MicroPython, against a server that misbehaves: it survives and recovers.

Each test points the unmodified firmware (tests/support/simboard.py) at tests/support/fakeserver.py,
which upgrades the connection and then does the wrong thing on purpose (commands the real server
would never send included). The MCU sensor counts readings (1, 2, 3, ...), so what reaches the
server says exactly which readings were lost or sent again.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pulsewire import firmware
from pulsewire_devkit.simboard.runner import EXIT_RESET
from tests.support.fakeserver import Conn, FakeServer, silent, well_behaved
from tests.support.simboard import board, firmware_config
from tests.support.waiting import wait_until


def counters(batches: list[dict[str, Any]]) -> list[int]:
    return [int(r["values"]["mcu_temperature"]) for b in batches for r in b["data"] if "mcu_temperature" in r["values"]]


def sent_on(server: FakeServer, number: int) -> list[dict[str, Any]]:
    return [m for m in server.connections[number].received if m.get("type") == "telemetry"]


async def garbage_after_first_batch(conn: Conn) -> None:
    await conn.welcome()
    while (msg := await conn.recv()) is not None and msg.get("type") != "telemetry":
        pass
    conn.send_raw(b"\xf1\x05hello")  # reserved bits set: not a frame a server may send
    while await conn.recv() is not None:
        pass


def test_a_garbage_frame_closes_with_1002_and_the_unacked_batch_is_sent_again() -> None:
    with (
        FakeServer([garbage_after_first_batch, well_behaved]) as server,
        board(config=firmware_config(server.url, "pwd_test")) as sim,
    ):
        sim.wait_for_line("link: disconnected: protocol error: reserved bits", 15)
        wait_until(lambda: len(server.connections) == 2 and len(sent_on(server, 1)) >= 3, 15, "a new connection")
    assert server.connections[0].close_code == 1002
    first = counters(sent_on(server, 0))
    assert first and set(first) <= set(counters(sent_on(server, 1)))  # never acked: sent again


async def bad_text_then_truncated(conn: Conn) -> None:
    await conn.welcome()
    await conn.recv()
    conn.send_frame(0x1, b"this is not JSON {")
    conn.send_frame(0x1, b'{"type":"ack","seq":"one"}')  # JSON, but not a usable ack
    conn.send_frame(0x2, b"\x00\x01")  # binary: not part of this protocol
    for _ in range(2):  # the connection is still up: it keeps sending
        msg = await conn.recv()
        assert msg is not None and msg["type"] == "telemetry"
    conn.send_raw(b"\x81\x32" + b"x" * 10)  # a frame of 50 bytes that ends after 10
    await conn.writer.drain()
    conn.writer.close()


def test_bad_messages_are_ignored_and_a_truncated_frame_ends_only_that_connection() -> None:
    with (
        FakeServer([bad_text_then_truncated, well_behaved]) as server,
        board(config=firmware_config(server.url, "pwd_test")) as sim,
    ):
        sim.wait_for_line("link: ignored a bad message from the server", 15)
        sim.wait_for_line("link: ignored a binary message", 15)
        sim.wait_for_line("link: disconnected: connection lost", 15)
        wait_until(lambda: len(server.connections) == 2 and len(sent_on(server, 1)) >= 2, 15, "reconnected")
    assert len(sent_on(server, 0)) >= 3
    assert set(counters(sent_on(server, 0))) <= set(counters(sent_on(server, 1)))


async def close_without_ack(conn: Conn) -> None:
    await conn.welcome()
    await conn.recv()
    conn.send_frame(0x8, (1011).to_bytes(2, "big") + b"server restarting")
    while await conn.recv() is not None:  # the board answers the close
        pass


def test_an_unexpected_close_is_answered_and_the_board_comes_back() -> None:
    with (
        FakeServer([close_without_ack, well_behaved]) as server,
        board(config=firmware_config(server.url, "pwd_test")) as sim,
    ):
        sim.wait_for_line("link: disconnected: server closed (1011 server restarting)", 15)
        wait_until(lambda: len(server.connections) == 2 and len(sent_on(server, 1)) >= 2, 15, "reconnected")
    assert server.connections[0].close_code == 1011  # the board echoed the server's close code
    assert set(counters(sent_on(server, 0))) <= set(counters(sent_on(server, 1)))


def test_a_server_that_accepts_tcp_and_never_answers_is_given_up_on_and_retried() -> None:
    with (
        FakeServer([silent], status=0) as server,
        board(config=firmware_config(server.url, "pwd_test", silence_ms=5000)) as sim,
    ):
        sim.wait_for_line("link: no answer from 127.0.0.1", 10)
        wait_until(lambda: len(server.attempts) >= 2, 10, "a second attempt")
        assert sim.status()["readings"] > 0  # sampling never stopped


async def welcome_then_nothing(conn: Conn) -> None:
    await conn.welcome()
    await asyncio.sleep(3600)  # reads nothing, acks nothing, pings nothing


def test_a_server_gone_silent_after_welcome_is_detected() -> None:
    with (
        FakeServer([welcome_then_nothing, well_behaved]) as server,
        board(config=firmware_config(server.url, "pwd_test", silence_ms=5000)) as sim,
    ):
        sim.wait_for_line("link: disconnected: server silent for", 12)
        wait_until(lambda: len(server.connections) == 2 and sent_on(server, 1), 15, "a new connection")


COMMANDS = [
    ("c-1", "set_interval", {"ms": 50}),  # below the bounds: the real server never sends it
    ("c-2", "self_destruct", {}),
    ("c-3", "set_interval", {"ms": 300}),
    ("c-4", "reboot", {}),
]


async def commands_then_reboot(conn: Conn) -> None:
    await conn.welcome()
    await conn.recv()
    for cid, name, args in COMMANDS:
        conn.send({"type": "command", "id": cid, "name": name, "args": args})
    await conn.ack_everything()  # until the board closes for its reboot


def test_commands_are_answered_by_the_shared_rule_and_reboot_closes_then_resets() -> None:
    rules = firmware.load("rules")  # the same file, under CPython
    with (
        FakeServer([commands_then_reboot]) as server,
        board(config=firmware_config(server.url, "pwd_test")) as sim,
    ):
        assert sim.wait_exit(20) == EXIT_RESET
    assert "link: interval set to 300 ms" in sim.lines
    assert "pwsim: reset (machine.reset())" in sim.lines
    assert server.connections[0].close_code == 1001  # going away, before the reset
    results = [m for m in server.connections[0].received if m.get("type") == "result"]
    expected = []
    for cid, name, args in COMMANDS:
        ok, detail, _ = rules.answer(name, args)
        expected.append({"type": "result", "id": cid, "ok": ok, **({"detail": detail} if detail else {})})
    assert results == expected


def test_a_refused_token_backs_off_instead_of_hammering() -> None:
    with FakeServer([silent], status=401) as server, board(config=firmware_config(server.url, "pwd_revoked")) as sim:
        sim.wait_for_line("link: token refused (HTTP 401", 10)
        # The board's own clock: 15 readings at 200 ms are 3 s, in which a plain failure would
        # have been retried at least twice (0.5-1 s, then 1-2 s).
        taken = sim.status()["readings"]
        wait_until(lambda: sim.status()["readings"] >= taken + 15, 10, "15 readings after the refusal")
        assert len(server.attempts) == 1  # the next try is a minute or more away
        line = next(li for li in sim.lines if "token refused" in li)
        assert int(line.rsplit("next try in ", 1)[1].split()[0]) >= 30


def test_a_full_buffer_drops_the_oldest_and_reports_how_many() -> None:
    with FakeServer([well_behaved]) as server:
        cfg = firmware_config(server.url, "pwd_test", buffer=5, interval_ms=100)
        with board(config=cfg) as sim:
            sim.wait_for_line("link: online", 15)
            wait_until(lambda: len(server.telemetry()) >= 2, 10, "streaming")
            since = sim.mark()
            sim.pause_net()  # no new connection succeeds
            sim.cut()
            sim.wait_for_line("link: cannot connect", 10, since)
            taken = sim.status()["readings"]
            wait_until(lambda: sim.status()["readings"] >= taken + 20, 10, "20 readings into a ring of 5")
            sim.resume_net()
            sim.wait_for_line("link: online", 15, since)

            def missing() -> int:
                seen = sorted(set(counters(server.telemetry())))
                return len(range(seen[0], seen[-1] + 1)) - len(seen)

            def reported() -> int:
                return max(
                    (
                        int(r["values"]["dropped"])
                        for b in server.telemetry()
                        for r in b["data"]
                        if "dropped" in r["values"]
                    ),
                    default=0,
                )

            # Readings carry the count as it was when they were taken; the next ones catch up.
            wait_until(lambda: reported() > 0 and reported() == missing(), 10, "the drop count to be reported")
    assert missing() > 10  # about 20 readings into a ring of 5: the oldest went, and exactly they were counted
