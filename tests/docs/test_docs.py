"""Docs are tested: every setting, flag, environment variable, command, message type, error code,
close code, route, query parameter and metric of the code appears in docs/ (STYLE.md habit 7).

The lists come from the code itself (the Settings model, the click commands, the codec's
constants, the app's routes, the Prometheus registry, the message literals in the channel
modules), so adding any of them without documenting it makes a test here fail.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any, get_args

import click
import pytest
from starlette.routing import WebSocketRoute

from pulsewire.app.factory import create_app
from pulsewire.channels import device as device_channel
from pulsewire.channels import hub
from pulsewire.channels import live as live_channel
from pulsewire.cli.main import main as cli_main
from pulsewire.http import devices as devices_api
from pulsewire.http import telemetry as telemetry_api
from pulsewire.metrics import Metrics
from pulsewire.protocol import device as codec
from pulsewire.protocol import live as live_codec
from pulsewire.protocol import rules
from pulsewire.settings import Settings
from pulsewire.storage.queries import AGGREGATES
from tests.support.env import ROOT

DOCS = ROOT / "docs"

# Modules whose message literals make up each channel of the wire contract.
DEVICE_CHANNEL_MODULES = (codec, device_channel)
LIVE_CHANNEL_MODULES = (live_codec, hub, live_channel)
# Modules that close device-channel and live-channel connections.
DEVICE_CLOSERS = (device_channel, devices_api)
LIVE_CLOSERS = (live_channel,)
DOCUMENTED_ROUTE_PREFIXES = ("/api", "/ws", "/healthz", "/readyz", "/metrics")


# --- reading the docs -----------------------------------------------------------------------------


@cache
def doc(name: str) -> str:
    path = DOCS / name
    assert path.exists(), f"{path} is missing"
    return path.read_text(encoding="utf-8")


def section(text: str, heading: str) -> str:
    """The part of `text` under the first heading line matching the regex `heading`, up to the next
    heading of the same or a higher level."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"(#+)\s", line)
        if m and re.search(heading, line):
            level = len(m.group(1))
            end = len(lines)
            for j in range(i + 1, len(lines)):
                n = re.match(r"(#+)\s", lines[j])
                if n and len(n.group(1)) <= level:
                    end = j
                    break
            return "\n".join(lines[i:end])
    raise AssertionError(f"no heading matching {heading!r}")


def protocol_part(number: int) -> str:
    return section(doc("protocol.md"), rf"^## {number}\.")


def table_row(text: str, first_cell: str) -> str | None:
    """The Markdown table row whose first cell is exactly `first_cell`."""
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.lstrip().startswith("|") and cells and cells[0] == first_cell:
            return line
    return None


def headings(text: str) -> list[str]:
    return [line for line in text.splitlines() if re.match(r"#+\s", line)]


# --- reading the code -----------------------------------------------------------------------------


def setting_names() -> list[str]:
    return list(Settings.model_fields)


def env_var(name: str) -> str:
    return f"{Settings.model_config.get('env_prefix', '')}{name}".upper()


def walk_commands(
    cmd: click.Command, path: tuple[str, ...] = ("pulsewire",)
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    yield path, cmd
    if isinstance(cmd, click.Group):
        ctx = click.Context(cmd)
        for name in sorted(cmd.list_commands(ctx)):  # the devkit's commands load only when asked for
            sub = cmd.get_command(ctx, name)
            assert sub is not None, f"{name} is listed but does not load"
            yield from walk_commands(sub, (*path, name))


COMMANDS = dict(walk_commands(cli_main))


def options(cmd: click.Command) -> list[click.Option]:
    return [p for p in cmd.params if isinstance(p, click.Option)]


def setting_flag(name: str) -> str:
    """The flag of `pulsewire serve` that sets `name`."""
    serve = COMMANDS[("pulsewire", "serve")]
    found = [o for o in options(serve) if o.name == name]
    assert found, f"setting {name} has no flag on `pulsewire serve`"
    return next(opt for opt in found[0].opts if opt.startswith("--"))


def envvars(opt: click.Option) -> list[str]:
    if opt.envvar is None:
        return []
    return [opt.envvar] if isinstance(opt.envvar, str) else list(opt.envvar)


def source(module: Any) -> str:
    return inspect.getsource(module)


def message_types(modules: tuple[Any, ...]) -> set[str]:
    """Every `type` a module sends or accepts: dict literals {"type": "x"} (also inside f-strings)
    and comparisons of the message's type (`kind == "x"`, `msg.get("type") != "x"`)."""
    found: set[str] = set()
    for module in modules:
        text = source(module)
        found |= set(re.findall(r"""["']type["']\s*:\s*["'](\w+)["']""", text))
        found |= set(re.findall(r"""\bkind\s*[!=]=\s*["'](\w+)["']""", text))
        found |= set(re.findall(r"""\.get\(\s*["']type["']\s*\)\s*[!=]=\s*["'](\w+)["']""", text))
    return found


def constants(prefix: str) -> dict[str, Any]:
    return {k: v for k, v in vars(codec).items() if k.startswith(prefix)}


def close_codes_used(modules: tuple[Any, ...]) -> set[int]:
    names = set()
    for module in modules:
        names |= set(re.findall(r"\b(CLOSE_[A-Z_]+)\b", source(module)))
    codes = constants("CLOSE_")
    return {codes[n] for n in names if n in codes}


def app_routes() -> list[tuple[str, str]]:
    """(method, path) of every route of the app, WebSocket routes as GET, nested routers included."""
    app = create_app(Settings(data_dir=Path("unused-by-create-app")))
    out: list[tuple[str, str]] = []

    def walk(routes: list[Any], prefix: str) -> None:
        for route in routes:
            inner = getattr(route, "original_router", None)  # FastAPI >= 0.160 keeps included routers
            if inner is not None:
                ctx = getattr(route, "include_context", None)
                walk(inner.routes, prefix + (getattr(ctx, "prefix", "") or ""))
                continue
            path = getattr(route, "path", None)
            if path is None:
                continue
            if getattr(route, "routes", None) and not isinstance(route, WebSocketRoute):  # a Mount
                walk(route.routes, prefix + path)
                continue
            if isinstance(route, WebSocketRoute):
                out.append(("GET", prefix + path))
            for method in sorted(getattr(route, "methods", None) or ()):
                if method != "HEAD":
                    out.append((method, prefix + path))

    walk(list(app.routes), "")
    return sorted({r for r in out if r[1].startswith(DOCUMENTED_ROUTE_PREFIXES)})


def metric_families() -> list[Any]:
    return list(Metrics().registry.collect())


def metric_label_names() -> dict[str, tuple[str, ...]]:
    metrics = Metrics()
    out = {}
    for value in vars(metrics).values():
        name = getattr(value, "_name", None)
        if isinstance(name, str):
            out[name] = tuple(getattr(value, "_labelnames", ()))
    return out


def refusal_reasons() -> set[str]:
    """The `reason` label values of the device handshake refusals: 4th argument of `_refuse(...)`."""
    return set(re.findall(r"""_refuse\(\s*ws,\s*services,\s*\d+,\s*["'](\w+)["']""", source(device_channel)))


# --- settings -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", setting_names())
def test_setting_documented(name: str) -> None:
    text = section(doc("configuration.md"), r"^## Settings")
    row = table_row(text, f"`{name}`")
    assert row is not None, f"setting {name} has no row in docs/configuration.md"
    flag = setting_flag(name)
    assert f"`{flag}`" in row, f"{name}: flag {flag} missing from its row"
    assert f"`{env_var(name)}`" in row, f"{name}: environment variable {env_var(name)} missing from its row"
    default = Settings.model_fields[name].default
    shown = "unset" if default is None else f"`{default}`"
    assert shown in row, f"{name}: default {shown} missing from its row"


def test_settings_table_names_only_real_settings() -> None:
    text = section(doc("configuration.md"), r"^## Settings")
    documented = set(re.findall(r"^\|\s*`(\w+)`\s*\|", text, flags=re.M))
    assert documented == set(setting_names())


def test_setting_defaults_quoted_in_protocol_match() -> None:
    """`name` (default N) in protocol.md must name a real setting with that default."""
    for name, value in re.findall(r"`(\w+)` \(default (\d+(?:\.\d+)?)", doc("protocol.md")):
        assert name in Settings.model_fields, f"protocol.md quotes a default of unknown setting {name}"
        assert float(value) == float(Settings.model_fields[name].default), f"protocol.md: wrong default for {name}"


# --- commands -------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [p for p in COMMANDS if len(p) > 1], ids=lambda p: "-".join(p[1:]))
def test_command_documented(path: tuple[str, ...]) -> None:
    cmd = COMMANDS[path]
    text = doc("configuration.md")
    title = " ".join(path)
    own = [h for h in headings(text) if re.search(rf"`{re.escape(title)}(\s[^`]*)?`", h)]
    assert own, f"`{title}` has no heading in docs/configuration.md"
    body = section(text, re.escape(own[0]))
    for arg in (p for p in cmd.params if isinstance(p, click.Argument)):
        assert arg.human_readable_name in own[0], (
            f"{title}: argument {arg.human_readable_name} missing from its heading"
        )
    for opt in options(cmd):
        if opt.name in Settings.model_fields:
            continue  # documented in the settings table (test_setting_documented)
        flag = next(o for o in opt.opts if o.startswith("--"))
        assert f"`{flag}" in body, f"{title}: option {flag} missing from its section"
        for env in envvars(opt):
            assert f"`{env}`" in text, f"{title}: environment variable {env} missing"


def test_help_and_version_documented() -> None:
    text = doc("configuration.md")
    ctx = click.Context(cli_main)
    for opt in cli_main.get_params(ctx):
        if isinstance(opt, click.Option):
            assert any(f"`{o}`" in text or f"{o}`" in text for o in opt.opts), f"option {opt.opts} undocumented"


def test_documented_flags_and_env_vars_exist() -> None:
    """The reverse: configuration.md mentions no flag or PULSEWIRE_* variable the code does not have."""
    known_flags = {"--help", "-h", "--version"}
    known_env = {env_var(n) for n in setting_names()}
    for cmd in COMMANDS.values():
        for opt in options(cmd):
            known_flags |= set(opt.opts) | set(opt.secondary_opts)
            known_env |= set(envvars(opt))
    text = doc("configuration.md")
    assert set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", text)) <= known_flags
    assert set(re.findall(r"\bPULSEWIRE_[A-Z0-9_]*[A-Z0-9]\b", text)) <= known_env


# --- device channel -------------------------------------------------------------------------------


def test_message_scanner_sees_the_codec_messages() -> None:
    """The source scan below finds at least every message class the codec decodes."""
    decoded = {cls.__name__.lower() for cls in get_args(codec.Message)}
    assert decoded <= message_types(DEVICE_CHANNEL_MODULES)
    for kind in decoded:  # and those are really accepted types
        try:
            codec.decode_message({"type": kind})
        except codec.MessageError as exc:
            assert exc.code != codec.ERR_UNKNOWN_TYPE


@pytest.mark.parametrize("kind", sorted(message_types(DEVICE_CHANNEL_MODULES)))
def test_device_message_type_documented(kind: str) -> None:
    assert re.search(rf'"type"\s*:\s*"{kind}"', protocol_part(1)), (
        f'no {{"type":"{kind}"}} example in protocol.md section 1'
    )


@pytest.mark.parametrize("kind", sorted(message_types(LIVE_CHANNEL_MODULES)))
def test_live_message_type_documented(kind: str) -> None:
    assert re.search(rf'"type"\s*:\s*"{kind}"', protocol_part(2)), (
        f'no {{"type":"{kind}"}} example in protocol.md section 2'
    )


@pytest.mark.parametrize("name", sorted(constants("ERR_")))
def test_error_code_documented(name: str) -> None:
    code = constants("ERR_")[name]
    assert table_row(protocol_part(1), f"`{code}`"), (
        f"error code {code} ({name}) has no table row in protocol.md section 1"
    )


@pytest.mark.parametrize("name", sorted(constants("CLOSE_")))
def test_close_code_documented(name: str) -> None:
    code = constants("CLOSE_")[name]
    rows = [table_row(protocol_part(part), str(code)) for part in (1, 2)]
    assert any(rows), f"close code {code} ({name}) has no table row in protocol.md section 1 or 2"


@pytest.mark.parametrize("code", sorted(close_codes_used(LIVE_CLOSERS)))
def test_live_close_code_documented(code: int) -> None:
    assert table_row(protocol_part(2), str(code)), f"live close code {code} has no table row in protocol.md section 2"


def test_device_close_codes_used_are_documented() -> None:
    for code in close_codes_used(DEVICE_CLOSERS):
        assert table_row(protocol_part(1), str(code))


def test_handshake_refusal_reasons_documented() -> None:
    reasons = refusal_reasons()
    assert reasons, "no _refuse(...) call found in channels/device.py"
    for reason in reasons:
        assert f"`{reason}`" in protocol_part(1), f"refusal reason {reason} undocumented"


def test_limits_documented() -> None:
    limits = section(doc("protocol.md"), r"^## Limits")
    for number in (codec.MAX_READINGS_PER_BATCH, codec.MAX_VALUES_PER_READING):
        assert f"| {number} |" in limits
    assert str(codec.MAX_FRAME_BYTES) in limits
    assert str(rules.MAX_TS) in limits
    assert rules.NAME_CHARS in limits
    assert f"`{codec.SUBPROTOCOL}`" in protocol_part(1)


# --- HTTP API -------------------------------------------------------------------------------------


def test_route_walker_finds_routes() -> None:
    routes = app_routes()
    assert any(path.startswith("/ws") for _, path in routes)
    assert any(path.startswith("/api") for _, path in routes)


@pytest.mark.parametrize("method,path", app_routes(), ids=lambda v: v)
def test_route_documented(method: str, path: str) -> None:
    # Path parameters may be named differently in the docs ({id} for {device_id}).
    pattern = re.sub(r"\\\{\w+\\\}", r"\\{\\w+\\}", re.escape(path))
    wanted = re.compile(rf"`{method} {pattern}`")
    assert any(wanted.search(h) for h in headings(doc("protocol.md"))), (
        f"no heading for `{method} {path}` in protocol.md"
    )


@pytest.mark.parametrize("param", sorted(telemetry_api.PARAMS))
def test_telemetry_query_parameter_documented(param: str) -> None:
    text = section(protocol_part(3), r"`GET /api/devices/\{\w+\}/telemetry`")
    assert table_row(text, f"`{param}`"), f"query parameter {param} has no row under GET .../telemetry"


@pytest.mark.parametrize("family", metric_families(), ids=lambda f: f.name)
def test_metric_documented(family: Any) -> None:
    exposed = f"{family.name}_total" if family.type == "counter" else family.name
    row = table_row(section(protocol_part(3), r"`GET /metrics`"), f"`{exposed}`")
    assert row is not None, f"metric {exposed} has no row under GET /metrics"
    assert family.type in row
    for label in metric_label_names().get(family.name, ()):
        assert f"`{label}`" in row, f"{exposed}: label {label} undocumented"


def test_value_limits_match_the_codec() -> None:
    text = (DOCS / "protocol.md").read_text()
    integer_row = next(line for line in text.splitlines() if line.startswith("| integer value"))
    assert f"{codec.MAX_EXACT_INT:,}".replace(",", "") in integer_row.replace(",", "") or "2^53" in integer_row


def test_aggregates_and_their_refusals_documented() -> None:
    text = section(protocol_part(3), r"`GET /api/devices/\{\w+\}/telemetry`")
    row = table_row(text, "`agg`")
    assert row is not None
    for agg in AGGREGATES:
        assert f"`{agg}`" in row, f"aggregate {agg} missing from the agg row"
    for bad in ("median", "avg,median", "min,max,min", "avg,,max"):
        with pytest.raises(ValueError) as refused:
            telemetry_api.parse_aggs(bad)
        assert f"`agg: {refused.value}`" in text, f"the refusal of agg={bad} is not documented as the server says it"


def test_every_dashboard_module_has_a_row_in_the_files_table() -> None:
    table = section(doc("dashboard.md"), r"^## Files")
    modules = sorted(p.name for p in (DOCS.parent / "dashboard" / "js").glob("*.js"))
    assert modules, "no dashboard/js/*.js found"
    listed = set(re.findall(r"`js/([\w.-]+\.js)`", table))
    assert set(modules) == listed, (
        f"not in the table: {sorted(set(modules) - listed)}; gone: {sorted(listed - set(modules))}"
    )
