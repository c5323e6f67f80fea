"""The flash plan: command-line options turned into what will be done, checked before anything is.

Nothing here talks to a server or a board. The board's configuration is validated by the
firmware's own `config.check` and `sensors.build` (loaded from device/firmware under CPython,
`hardware` replaced by a stand-in), so a configuration the board would refuse is refused here, with
the board's message, before the board is touched.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType
from typing import Any, Literal
from urllib.parse import urlsplit

from pulsewire import firmware
from pulsewire.netaddr import is_loopback_host, lan_address
from pulsewire_devkit.flash import image
from pulsewire_devkit.flash.errors import FlashError
from pulsewire_devkit.flash.image import DEFAULT_BAUD, Image

CONFIG_NAME = "pulsewire.json"  # the board reads this name (device/firmware/config.py PATH)
PLACEHOLDER_TOKEN = "pwd_" + "0" * 43  # stands in for a token the server has not issued yet

ResetMode = Literal["hard", "soft"]
OnExists = Literal["rotate", "ask", "fail"]


# --- sensors -------------------------------------------------------------------------------------

# The keys each sensor kind of device/firmware/sensors.py reads, with their types, for
# `--sensor TYPE:ARGS`. The kinds themselves are checked against the firmware's KINDS by a test;
# a full JSON object (`--sensor '{"type": ...}'`) passes anything through to the firmware.
SENSOR_KEYS: dict[str, dict[str, type]] = {
    "mcu_temp": {"name": str},
    "system": {},
    "adc": {"pin": int, "name": str, "scale": float, "offset": float},
    "dht22": {"pin": int, "prefix": str},
    "bme280": {"sda": int, "scl": int, "address": int, "prefix": str},
}
SENSOR_REQUIRED = {"adc": ("pin",), "dht22": ("pin",)}
SENSOR_POSITIONAL = {"adc": "pin", "dht22": "pin"}  # adc:34 means adc:pin=34
SENSOR_EXAMPLES = "mcu_temp, system, adc:34, dht22:4, bme280, bme280:sda=21,scl=22,address=0x76"


def parse_sensor(text: str) -> dict[str, Any]:
    """`--sensor` value: `TYPE`, `TYPE:ARG,KEY=VALUE,...` or a JSON object -> a sensors entry."""
    text = text.strip()
    if text.startswith("{"):
        try:
            given = json.loads(text)
        except ValueError as exc:
            raise FlashError(f"--sensor {text!r}: not valid JSON ({exc})") from None
        if not isinstance(given, dict) or not isinstance(given.get("type"), str):
            raise FlashError(f'--sensor {text!r}: a JSON sensor needs a "type", like {{"type": "adc", "pin": 34}}')
        return given
    kind, _, args = text.partition(":")
    kind = kind.strip().lower().replace("-", "_")
    if kind not in SENSOR_KEYS:
        raise FlashError(f"--sensor {text!r}: unknown sensor type {kind!r}; expected one of: {SENSOR_EXAMPLES}")
    keys = SENSOR_KEYS[kind]
    spec: dict[str, Any] = {"type": kind}
    for i, part in enumerate(p.strip() for p in args.split(",") if p.strip()):
        key, eq, value = part.partition("=")
        if not eq:
            if i > 0 or kind not in SENSOR_POSITIONAL:
                raise FlashError(f"--sensor {text!r}: {part!r} needs a name, like {_key_example(kind)}")
            key, value = SENSOR_POSITIONAL[kind], part
        key = key.strip()
        if key not in keys:
            known = ", ".join(keys) or "none"
            raise FlashError(f"--sensor {text!r}: {kind} has no setting {key!r} (it takes: {known})")
        spec[key] = _sensor_value(text, key, keys[key], value.strip())
    for key in SENSOR_REQUIRED.get(kind, ()):
        if key not in spec:
            raise FlashError(f"--sensor {text!r}: {kind} needs a {key}: {kind}:{_key_example(kind).split('=')[1]}")
    return spec


def _key_example(kind: str) -> str:
    return {"adc": "pin=34", "dht22": "pin=4", "bme280": "sda=21", "mcu_temp": "name=chip_temp"}.get(kind, "key=value")


def _sensor_value(text: str, key: str, kind: type, value: str) -> Any:
    try:
        if kind is int:
            return int(value, 0)  # 0x76 or 118
        if kind is float:
            return float(value)
    except ValueError:
        raise FlashError(f"--sensor {text!r}: {key} must be a {kind.__name__}, got {value!r}") from None
    if not value:
        raise FlashError(f"--sensor {text!r}: {key} is empty")
    return value


# --- the firmware's own checks -------------------------------------------------------------------


class _StandInHardware(ModuleType):
    """`hardware` for sensors.build under CPython: every hardware call answers with an inert object."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return lambda *args, **kwargs: _Inert()


class _Inert:
    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: 0


def load_firmware_sensors(firmware_dir: Path) -> ModuleType:
    """The firmware's sensors.py with `hardware` (and the driver it imports lazily) stood in for."""
    stand_in = _StandInHardware("hardware")
    return firmware.load("sensors", source=firmware_dir, stand_ins={"hardware": stand_in, "bme280": stand_in})


@dataclass(frozen=True)
class CheckedConfig:
    raw: dict[str, Any]  # what goes into pulsewire.json
    effective: dict[str, Any]  # with the firmware's defaults filled in
    values: list[str]  # the metric names the board will send, `dropped` included
    unknown_keys: list[str]


def check_config(raw: dict[str, Any], firmware_dir: Path) -> CheckedConfig:
    """Validate as the board does at boot (main.py: config.load, sensors.build, config.check_names)."""
    config = firmware.load("config", source=firmware_dir)
    try:
        effective = config.check(raw)
    except config.ConfigError as exc:
        raise FlashError(f"the board would refuse this configuration: {exc}") from None
    sensors = load_firmware_sensors(firmware_dir)
    try:
        names, _ = sensors.build(effective["sensors"])
        names.append("dropped")
        config.check_names(names)
    except (ValueError, TypeError) as exc:
        message = str(exc) if str(exc).startswith("config:") else f"config: sensors: {exc}"
        raise FlashError(f"the board would refuse this configuration: {message}") from None
    known = {"server", "token", "wifi", *config.DEFAULTS}
    return CheckedConfig(raw, effective, list(names), sorted(set(raw) - known))


def build_config(
    base: dict[str, Any],
    *,
    server: str | None,
    token: str | None,
    wifi_ssid: str | None,
    wifi_password: str | None,
    interval_ms: int | None,
    sensors: list[dict[str, Any]],
) -> dict[str, Any]:
    """The JSON written to the board: `base` (from --config) with the flags applied on top."""
    cfg = dict(base)
    if server:
        cfg["server"] = server.rstrip("/")
    if token:
        cfg["token"] = token
    if wifi_ssid is not None:
        cfg["wifi"] = {"ssid": wifi_ssid, "password": wifi_password or ""}
    elif wifi_password is not None:
        if not isinstance(cfg.get("wifi"), dict):
            raise FlashError("--wifi-password needs --wifi-ssid (or a wifi entry in --config)")
        cfg["wifi"] = {**cfg["wifi"], "password": wifi_password}
    if interval_ms is not None:
        cfg["interval_ms"] = interval_ms
    if sensors:
        cfg["sensors"] = sensors
    order = ["server", "token", "wifi", "interval_ms", "sensors"]
    return {k: cfg[k] for k in sorted(cfg, key=lambda k: order.index(k) if k in order else len(order))}


def mask_token(token: str | None) -> str:
    if not token:
        return ""
    if token == PLACEHOLDER_TOKEN:
        return "<issued by the server>"
    prefix = token[:4] if token.startswith("pwd_") else ""
    return prefix + "********"


def masked(cfg: dict[str, Any]) -> dict[str, Any]:
    """The configuration for printing: token and Wi-Fi password replaced."""
    out = dict(cfg)
    if "token" in out:
        out["token"] = mask_token(out["token"])
    wifi = out.get("wifi")
    if isinstance(wifi, dict) and wifi.get("password"):
        out["wifi"] = {**wifi, "password": "********"}
    return out


def config_bytes(cfg: dict[str, Any]) -> bytes:
    return (json.dumps(cfg, indent=1) + "\n").encode()


# --- the plan ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    """What `pulsewire flash` was asked to do (its flags), before any checking."""

    port: str
    server: str | None = None  # the URL the board uses
    api_url: str | None = None  # the URL this command uses; default: derived from server
    device_id: str | None = None
    name: str | None = None
    token: str | None = None
    rotate_token: bool = False
    yes: bool = False
    interactive: bool = False
    admin_key: str | None = None
    wifi_ssid: str | None = None
    wifi_password: str | None = None
    interval_ms: int | None = None
    sensors: tuple[str, ...] = ()
    config_file: Path | None = None
    firmware_image: Path | None = None
    chip: str = "auto"
    flash_baud: int = DEFAULT_BAUD
    reset: str = "auto"
    wait_s: float = 60.0
    dry_run: bool = False
    firmware_dir: Path | None = None


@dataclass(frozen=True)
class Identity:
    device_id: str | None
    name: str | None
    token: str | None  # given (--token or --config): the server's registry is not touched
    on_exists: OnExists  # when registering an id that exists

    @property
    def registers(self) -> bool:
        return self.token is None


@dataclass(frozen=True)
class Plan:
    port: str
    api_url: str | None  # the server as this machine reaches it
    server_url: str  # the server as the board reaches it (pulsewire.json's `server`)
    identity: Identity
    config: CheckedConfig  # token is PLACEHOLDER_TOKEN until the server issues one
    image: Image | None
    firmware_dir: Path
    reset: ResetMode
    wait_s: float
    admin_key: str | None = field(default=None, repr=False)
    warnings: tuple[str, ...] = ()

    @property
    def waits(self) -> bool:
        return self.wait_s > 0 and self.identity.device_id is not None and self.api_url is not None

    @property
    def checks_server(self) -> bool:
        return self.identity.registers or self.waits

    def steps(self) -> list[str]:
        """The step keys, in the order run() does them."""
        keys = ["server"] if self.checks_server else []
        keys += ["compile"]
        keys += ["image"] if self.image else []
        keys += ["connect", "identity", "copy", "reset"]
        keys += ["wait"] if self.waits else []
        return keys

    def with_token(self, token: str) -> Plan:
        raw = {**self.config.raw, "token": token}
        return replace(self, config=check_config(raw, self.firmware_dir))


def is_socket_port(port: str) -> bool:
    return port.startswith("socket://")


def is_serial_port(port: str) -> bool:
    """A real board's port (a device path, or rfc2217:// to a serial server), not a simulated one."""
    return not is_socket_port(port)


def api_url_for(server_url: str) -> str:
    """The HTTP base URL of the server the board reaches at `server_url` (ws:// -> http://)."""
    parts = urlsplit(server_url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return parts._replace(scheme=scheme).geturl().rstrip("/")


def _loopback_warning(server_url: str) -> str | None:
    parts = urlsplit(server_url)
    if not parts.hostname or not is_loopback_host(parts.hostname):
        return None
    lan = lan_address()
    suggestion = ""
    if lan:
        port = f":{parts.port}" if parts.port else ""
        suggestion = f" This machine's address is probably {lan}: --server {parts.scheme}://{lan}{port}."
    return (
        f"--server {server_url} points at the board itself: a board cannot reach this machine's "
        f"{parts.hostname}. Give an address the board can reach on its network, and run the server with "
        f"--host 0.0.0.0.{suggestion}"
    )


def _load_config_file(path: Path) -> dict[str, Any]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise FlashError(f"--config {path}: cannot read it ({exc.strerror})") from None
    except ValueError as exc:
        raise FlashError(f"--config {path}: not valid JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise FlashError(f'--config {path}: expected a JSON object like {{"server": ..., "token": ...}}')
    return raw


def _identity(opts: Options, file_token: str | None) -> Identity:
    from pulsewire.protocol.rules import is_device_id  # the server's own rule for ids

    if opts.device_id is not None and not is_device_id(opts.device_id):
        raise FlashError(f"--device-id {opts.device_id!r}: use 1-64 letters, digits, '_', '.' or '-' (but not . or ..)")
    if opts.token is not None and opts.rotate_token:
        raise FlashError("--rotate-token asks the server for a new token; it cannot be combined with --token")
    if opts.token is not None:
        if opts.name:
            raise FlashError("--name is given when registering the device; with --token nothing is registered")
        return Identity(opts.device_id, None, opts.token, "fail")
    if opts.device_id is None:
        if file_token and not opts.rotate_token:
            return Identity(None, None, file_token, "fail")
        raise FlashError(
            "which device is this board? Pass --device-id ID to register it on the server (its token is made "
            "for you), or --token TOKEN to use a token you already have (from `pulsewire device add`)"
        )
    on_exists: OnExists = "rotate" if (opts.rotate_token or opts.yes) else ("ask" if opts.interactive else "fail")
    return Identity(opts.device_id, opts.name, None, on_exists)


def _image(opts: Options, warnings: list[str]) -> Image | None:
    """The MicroPython image to write, its header checked against --chip and the port."""
    if opts.firmware_image is None:
        return None
    info = image.inspect(opts.firmware_image)
    chip = None if opts.chip == "auto" else opts.chip
    if chip and info.chip and chip != info.chip:
        raise FlashError(
            f"--firmware-image {opts.firmware_image.name} is built for {info.chip}, but --chip says {chip}: "
            f"download the MicroPython .bin for your board's chip from https://micropython.org/download/"
        )
    if info.merged is False:
        warnings.append(
            f"{opts.firmware_image.name} has no partition table where MicroPython's downloads have one: if it "
            "is only the application (a build's micropython.bin), the board will not boot; use the full "
            "firmware .bin from https://micropython.org/download/"
        )
    if is_socket_port(opts.port):
        raise FlashError("--firmware-image needs a serial port: esptool cannot write MicroPython over socket://")
    return Image(opts.firmware_image, info.size, chip, info.chip, opts.flash_baud)


def _text(base: dict[str, Any], key: str) -> str | None:
    """A string value of --config's file, or None."""
    value = base.get(key)
    return value if isinstance(value, str) else None


def _wifi_password(opts: Options, base: dict[str, Any], warnings: list[str]) -> str | None:
    """--wifi-password, or the one --config has for the same network."""
    if opts.wifi_ssid is None or opts.wifi_password is not None:
        return opts.wifi_password
    old = base.get("wifi")
    if isinstance(old, dict) and old.get("ssid") == opts.wifi_ssid and isinstance(old.get("password"), str):
        return str(old["password"])
    warnings.append(f"no --wifi-password: the board joins {opts.wifi_ssid!r} as an open network")
    return None


def _config(
    opts: Options, base: dict[str, Any], identity: Identity, firmware_dir: Path, warnings: list[str]
) -> CheckedConfig:
    """The board's configuration: --config's with the flags on top, checked as the firmware checks it."""
    server_url = opts.server or _text(base, "server")
    if not server_url:
        raise FlashError(
            "--server URL is required: the server's address as the board reaches it over Wi-Fi, "
            "like http://192.168.1.20:8000 (not 127.0.0.1: that is the board itself)"
        )
    sensors = [parse_sensor(s) for s in opts.sensors]
    raw = build_config(
        base,
        server=server_url,
        token=identity.token or PLACEHOLDER_TOKEN,
        wifi_ssid=opts.wifi_ssid,
        wifi_password=_wifi_password(opts, base, warnings),
        interval_ms=opts.interval_ms,
        sensors=sensors,
    )
    return check_config(raw, firmware_dir)


def _config_warnings(opts: Options, checked: CheckedConfig) -> list[str]:
    """What the firmware will ignore, and what the board may not manage with this configuration."""
    warnings = []
    if checked.unknown_keys:
        warnings.append(f"the firmware ignores these configuration keys: {', '.join(checked.unknown_keys)}")
    if "wifi" not in checked.raw:
        warnings.append("no --wifi-ssid: the board must already be on a network (its boot.py joins one)")
    loopback = _loopback_warning(checked.effective["server"]) if is_serial_port(opts.port) else None
    if loopback:
        warnings.append(loopback)
    return warnings


def _reset_mode(opts: Options) -> ResetMode:
    """--reset; auto: hard on a serial port (a clean start), soft on socket:// (the link stays up)."""
    if opts.reset == "hard":
        return "hard"
    if opts.reset == "soft":
        return "soft"
    if opts.reset == "auto":
        return "soft" if is_socket_port(opts.port) else "hard"
    raise FlashError(f"--reset {opts.reset!r}: expected auto, hard or soft")


def _check_can_register(opts: Options, identity: Identity) -> None:
    if identity.registers and not opts.dry_run and not opts.admin_key:
        raise FlashError(
            "no admin key to register the device: pass --admin-key or PULSEWIRE_ADMIN_KEY (or run where "
            "<data-dir>/admin.key is), or pass --token TOKEN to use a token you already have"
        )


def make_plan(opts: Options) -> Plan:
    """Check every option and the resulting configuration; raise FlashError with what to do."""
    firmware_dir = opts.firmware_dir or firmware.folder()
    warnings: list[str] = []
    base = _load_config_file(opts.config_file) if opts.config_file else {}
    identity = _identity(opts, _text(base, "token"))
    checked = _config(opts, base, identity, firmware_dir, warnings)
    server_url = checked.effective["server"]
    warnings += _config_warnings(opts, checked)
    reset = _reset_mode(opts)
    planned_image = _image(opts, warnings)
    if identity.device_id is None and opts.wait_s > 0:
        warnings.append("no --device-id: the command cannot tell which device to wait for, so it does not wait")
    _check_can_register(opts, identity)
    return Plan(
        port=opts.port,
        api_url=(opts.api_url or api_url_for(server_url)).rstrip("/"),
        server_url=server_url,
        identity=identity,
        config=checked,
        image=planned_image,
        firmware_dir=firmware_dir,
        reset=reset,
        wait_s=opts.wait_s,
        admin_key=opts.admin_key,
        warnings=tuple(warnings),
    )
