"""`pulsewire rule ...` and `pulsewire channel ...` against a real server, with a real webhook receiver."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from pulsewire.alerts.webhook import verify
from tests.support.cli import cli as pulsewire
from tests.support.receivers import WebhookReceiver, webhook_receiver
from tests.support.server import Server, start_server

SECRET = "a-secret-the-receiver-knows"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Server:
    return start_server(tmp_path_factory.mktemp("cli-alerting"), "sqlite", request)


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    with webhook_receiver(SECRET) as running:
        yield running


def run(server: Server, *args: str) -> tuple[int, str, str]:
    done = pulsewire(*args, "--server", server.base, "--admin-key", server.admin_key)
    return done.returncode, done.stdout, done.stderr


@pytest.mark.parametrize(
    "command, expected",
    [
        ([], ["rule", "channel"]),
        (["rule"], ["add", "list", "remove"]),
        (["rule", "add"], ["--name", "--device", "--op", "gt, ge, lt, le", "--no-data", "--for", "5m", "--channel"]),
        (["rule", "list"], ["--json", "condition"]),
        (["channel"], ["add", "list", "remove", "test"]),
        (["channel", "add"], ["webhook", "email"]),
        (["channel", "add", "webhook"], ["NAME", "--url", "--secret", "printed once"]),
        (["channel", "add", "email"], ["NAME", "--to", "repeat"]),
        (["channel", "test"], ["CHANNEL_ID", "Exits 1 when it was not delivered"]),
    ],
)
def test_help_explains_each_alerting_command(command: list[str], expected: list[str]) -> None:
    out = pulsewire(*command, "--help")
    assert out.returncode == 0, out.stderr
    for word in expected:
        assert word in out.stdout, (command, word)


def test_a_webhook_channel_is_added_with_a_generated_secret_tested_and_removed(
    server: Server, receiver: WebhookReceiver
) -> None:
    code, out, err = run(server, "channel", "add", "webhook", "ops", "--url", receiver.url("/ok"))
    assert code == 0, err
    channel = out.split("added channel ")[1].split()[0]
    secret = out.split("secret: ")[1].split()[0]
    assert len(secret) >= 32 and "shown only now" in err

    receiver.secret = secret  # the receiver is given the printed secret, as an admin would
    try:
        code, out, err = run(server, "channel", "test", channel)
    finally:
        receiver.secret = SECRET
    assert code == 0 and out.strip() == f"{channel}: delivered: 200 OK", err
    assert verify(secret, receiver.received[-1].body, receiver.received[-1].headers["X-Pulsewire-Signature"])

    code, out, _ = run(server, "channel", "list")
    assert code == 0 and channel in out and receiver.url("/ok") in out and secret not in out
    code, out, _ = run(server, "channel", "remove", channel)
    assert code == 0 and out.strip() == f"removed channel {channel}"


def test_a_channel_given_its_secret_does_not_print_it(server: Server, receiver: WebhookReceiver) -> None:
    code, out, err = run(server, "channel", "add", "webhook", "given", "--url", receiver.url("/ok"), "--secret", SECRET)
    assert code == 0, err
    assert SECRET not in out + err and "secret:" not in out


def test_an_undelivered_test_exits_1_with_the_reason(server: Server, receiver: WebhookReceiver) -> None:
    _, out, _ = run(server, "channel", "add", "webhook", "broken", "--url", receiver.url("/fail"), "--secret", SECRET)
    channel = out.split("added channel ")[1].split()[0]
    code, out, err = run(server, "channel", "test", channel)
    assert code == 1 and f"Error: {channel}: not delivered: 500 Internal Server Error" in err
    code, _, err = run(server, "channel", "test", "ch_missing")
    assert code == 1 and "Error: 404: no channel 'ch_missing'" in err


def test_an_email_channel_and_the_servers_refusals(server: Server) -> None:
    code, out, err = run(server, "channel", "add", "email", "me", "--to", "a@example.org", "--to", "b@example.org")
    assert code == 0 and out.startswith("added channel ch_"), err
    code, out, _ = run(server, "channel", "list", "--json")
    assert {"name": "me", "type": "email", "to": ["a@example.org", "b@example.org"]}.items() <= next(
        c for c in json.loads(out) if c["name"] == "me"
    ).items()
    code, _, err = run(server, "channel", "add", "email", "bad", "--to", "not an address")
    assert code == 1 and "Error: 400: to[0]: " in err
    code, _, err = run(server, "channel", "add", "webhook", "bad", "--url", "ftp://x.example.org/", "--secret", SECRET)
    assert code == 1 and "Error: 400: url: the scheme must be http or https" in err


def test_rules_are_added_listed_and_removed(server: Server) -> None:
    _, out, _ = run(server, "channel", "add", "email", "rules-mail", "--to", "ops@example.org")
    channel = out.split("added channel ")[1].split()[0]
    code, out, err = run(
        server,
        "rule", "add", "--name", "freezer warm", "--device", "freezer-1", "--metric", "temperature",
        "--op", "gt", "--value", "-10", "--for", "5m", "--repeat", "1h", "--severity", "critical",
        "--channel", channel, "--json",
    )  # fmt: skip
    assert code == 0, err
    made = json.loads(out)
    assert (made["op"], made["value"], made["for_s"], made["repeat_s"], made["channels"]) == (
        ">",
        -10,
        300,
        3600,
        [channel],
    )
    code, out, err = run(server, "rule", "add", "--name", "silent", "--no-data", "--for", "10m")
    assert code == 0 and "no data (any metric) on *" in out, err
    silent = out.split("added rule ")[1].split(":")[0]
    code, out, err = run(
        server,
        "rule",
        "add",
        "--name",
        "band",
        "--metric",
        "humidity",
        "--op",
        "outside",
        "--low",
        "20",
        "--high",
        "80",
    )
    assert code == 0 and "humidity outside 20..80 on *" in out, err

    code, out, _ = run(server, "rule", "list")
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "NAME", "DEVICE", "CONDITION", "FOR", "SEVERITY", "CHANNELS"]
    row = next(line for line in lines if line.startswith(made["id"]))
    for cell in ("freezer warm", "freezer-1", "temperature > -10", "5m", "critical", channel):
        assert cell in row, (cell, row)
    assert {r["id"] for r in json.loads(run(server, "rule", "list", "--json")[1])} >= {made["id"], silent}

    code, out, _ = run(server, "rule", "remove", silent)
    assert code == 0 and out.strip() == f"removed rule {silent}"
    code, _, err = run(server, "rule", "remove", silent)
    assert code == 1 and f"Error: 404: no rule '{silent}'" in err
    code, _, err = run(server, "channel", "remove", channel)
    assert code == 1 and f"Error: 409: channel '{channel}' is named by rules {made['id']}" in err


def test_rule_refusals_are_shown_as_the_server_says_them(server: Server) -> None:
    code, _, err = run(server, "rule", "add", "--name", "x", "--metric", "t", "--op", "outside", "--value", "3")
    assert code == 1 and "Error: 400: " in err
    code, _, err = run(server, "rule", "add", "--name", "x", "--op", "gt", "--value", "3")
    assert code == 1 and "Error: 400: metric: required" in err
    code, _, err = run(
        server, "rule", "add", "--name", "x", "--metric", "t", "--op", "gt", "--value", "3", "--channel", "ch_nope"
    )
    assert code == 1 and "Error: 400: channels: no channel 'ch_nope'" in err
    code, _, err = run(server, "rule", "add", "--name", "x", "--no-data", "--for", "five minutes")
    assert code == 2 and "'five minutes' is not a duration" in err


def test_an_empty_server_says_how_to_begin(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    fresh = start_server(tmp_path, "sqlite", request)
    assert "no rules yet" in run(fresh, "rule", "list")[1]
    assert "no channels yet" in run(fresh, "channel", "list")[1]
