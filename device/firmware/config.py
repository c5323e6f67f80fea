"""The board's configuration: one JSON file written by `pulsewire flash`, checked on boot.

A mistake is reported by name (`config: interval_ms: ...`) instead of surfacing later as a
confusing failure; main.py prints it and blinks the LED rather than crashing into a reset loop.
"""

import json

import rules

PATH = "pulsewire.json"

DEFAULTS = {
    "interval_ms": 5000,  # until the server's welcome says otherwise
    "batch": 20,  # readings per telemetry message, at most
    "window": 8,  # batches in flight without an ack
    "buffer": 256,  # readings kept while the server is unreachable; the oldest go first
    "frame_bytes": 2048,  # largest message the board builds
    "silence_ms": 60000,  # no frame from the server for this long: the connection is dead
    "watchdog_ms": 120000,  # 0 turns the hardware watchdog off
    "journal_ms": 60000,  # offline, readings reach flash within this long; 0: kept in RAM only
    "led": -1,  # status LED pin; -1 for none
    "ntp": "",  # an NTP host to set the clock from; empty: the server's clock is used
    "ca": "",  # a PEM file with the CA for wss://; empty: the server is not verified
    "trial_ms": 120000,  # each boot of an updated version has this long to reach the server
    "sensors": [{"type": "mcu_temp"}, {"type": "system"}],
}

_LIMITS = {
    "interval_ms": (rules.MIN_INTERVAL_MS, rules.MAX_INTERVAL_MS),
    "batch": (1, 1000),
    "window": (1, 16),
    "buffer": (1, 5000),
    "frame_bytes": (256, 65536),
    "silence_ms": (5000, 3_600_000),
    "watchdog_ms": (0, 3_600_000),
    "journal_ms": (0, 3_600_000),
    "led": (-1, 48),
    "trial_ms": (1000, 3_600_000),
}


class ConfigError(ValueError):
    pass


def load(path: str = PATH) -> dict:
    try:
        with open(path) as f:
            raw = json.load(f)
    except OSError:
        raise ConfigError("config: %s not found; flash the board with `pulsewire flash`" % path)
    except ValueError:
        raise ConfigError("config: %s is not valid JSON" % path)
    return check(raw)


def check(raw: object) -> dict:
    if not isinstance(raw, dict):
        raise ConfigError("config: expected a JSON object")
    cfg = dict(DEFAULTS)
    cfg.update(raw)
    for key in ("server", "token"):
        if not isinstance(cfg.get(key), str) or not cfg[key]:
            raise ConfigError("config: %s: required" % key)
    parse_url(str(cfg["server"]))
    wifi = cfg.get("wifi")
    if wifi is not None and (not isinstance(wifi, dict) or not isinstance(wifi.get("ssid"), str)):
        raise ConfigError('config: wifi: expected {"ssid": ..., "password": ...}')
    for key in _LIMITS:
        lo, hi = _LIMITS[key]
        v = cfg[key]
        if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
            raise ConfigError("config: %s: expected an integer in %d..%d, got %r" % (key, lo, hi, v))
    for key in ("ntp", "ca"):
        if not isinstance(cfg[key], str):
            raise ConfigError("config: %s: expected a string" % key)
    sensors = cfg["sensors"]
    if not isinstance(sensors, list) or not all(isinstance(s, dict) for s in sensors):
        raise ConfigError("config: sensors: expected a list of objects")
    return cfg


def parse_url(url: str) -> tuple:
    """(secure, host, port, path) of the server's base URL: http(s):// or ws(s)://."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("http", "https", "ws", "wss"):
        raise ConfigError("config: server: expected http://, https://, ws:// or wss:// URL, got %r" % url)
    secure = scheme in ("https", "wss")
    hostport, _, path = rest.partition("/")
    host, colon, port = hostport.partition(":")
    if not host:
        raise ConfigError("config: server: no host in %r" % url)
    try:
        port_n = int(port) if colon else (443 if secure else 80)
    except ValueError:
        raise ConfigError("config: server: bad port in %r" % url)
    path = "/" + path.strip("/")
    if path == "/":
        path = ""
    return secure, host, port_n, path + "/ws/device"


def check_names(names: list) -> None:
    """Value names must be metric names the server accepts, and unique."""
    seen = set()
    for name in names:
        if not rules.is_metric_name(name):
            raise ConfigError("config: sensors: %r is not a valid metric name (%s)" % (name, rules.NAME_CHARS))
        if name in seen:
            raise ConfigError("config: sensors: two values are named %r; give one sensor a prefix" % name)
        seen.add(name)
    if len(names) > 30:
        raise ConfigError("config: sensors: %d values; at most 30 per board" % len(names))
