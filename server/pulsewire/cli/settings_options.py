"""Settings as command-line flags: one flag per Settings field, so flags and settings never drift."""

from __future__ import annotations

from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any, get_args

import click
from pydantic import ValidationError

from pulsewire.settings import Settings

_SETTING_TYPES: dict[Any, Any] = {int: int, float: float, Path: click.Path(path_type=Path)}


def _click_type(annotation: Any) -> Any:
    args = [a for a in get_args(annotation) if a is not type(None)]
    if args and all(isinstance(a, str) for a in args):  # Literal[...]
        return click.Choice(args, case_sensitive=False)
    base = args[0] if args else annotation
    if get_args(base) and all(isinstance(a, str) for a in get_args(base)):
        return click.Choice(list(get_args(base)), case_sensitive=False)
    return _SETTING_TYPES.get(base, str)


def _option(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    field = Settings.model_fields[name]
    env = f"PULSEWIRE_{name.upper()}"
    flag = f"--{name.replace('_', '-')}"
    if field.annotation is bool:  # --x / --no-x; None when neither is given, so the env var applies
        return click.option(
            f"{flag}/--no-{flag[2:]}",
            name,
            default=None,
            help=f"{field.description} [env {env}; default {'on' if field.default else 'off'}]",
        )
    return click.option(
        flag,
        name,
        type=_click_type(field.annotation),
        default=None,
        help=f"{field.description} [env {env}; default {field.default!s}]",
    )


def settings_options(only: Collection[str] | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """One flag per Settings field (--data-dir for data_dir, ...), or per field named in `only`."""
    names = [name for name in Settings.model_fields if only is None or name in only]
    unknown = set(only or ()) - set(names)
    if unknown:
        raise ValueError(f"no such settings: {', '.join(sorted(unknown))}")

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        for name in reversed(names):
            fn = _option(name)(fn)
        return fn

    return decorate


def build_settings(values: dict[str, Any]) -> Settings:
    """Settings from the flags that were given (the others come from PULSEWIRE_* or the defaults)."""
    given = {k: v for k, v in values.items() if k in Settings.model_fields and v is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        problems = "; ".join(
            (f"{'.'.join(map(str, e['loc']))}: " if e["loc"] else "") + e["msg"].removeprefix("Value error, ")
            for e in exc.errors()
        )
        raise click.UsageError(f"bad setting: {problems}") from None
