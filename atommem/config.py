"""Config loading: YAML/JSON files plus dotted overrides, turned into typed dataclasses.

Every recipe declares a dataclass; `from_dict` fills it from a plain dict and fails on an unknown key or
a value of the wrong type with the key's dotted name in the message. Ranges are checked once, in each
dataclass's `__post_init__` with `require`; `from_dict` puts the section's dotted prefix in front.
"""

from __future__ import annotations

import dataclasses
import json
import re
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from atommem.errors import InputError
from atommem.io import read_text

T = TypeVar("T")


class ConfigError(InputError):
    """A config file, key or value is wrong; the message names it."""


def option(default: Any, help: str) -> Any:  # noqa: A002 (the metadata key TRL and HfArgumentParser use)
    """A config field with its default and help text, the one place both are written; a list, dict or
    dataclass default (a callable or a mutable value) is made fresh for every instance."""
    if callable(default):
        return dataclasses.field(default_factory=default, metadata={"help": help})
    if isinstance(default, list | dict):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata={"help": help})
    return dataclasses.field(default=default, metadata={"help": help})


def require(ok: bool, key: str, expected: str, value: Any) -> None:
    """Fail with '<key>: expected <expected>, got <value>' unless `ok` (a range check in __post_init__)."""
    if not ok:
        raise ConfigError(f"{key}: expected {expected}, got {value!r}")


def require_positive(cfg: Any, *names: str, optional: bool = False) -> None:
    """Each named field is an integer/number >= 1 (or None when `optional`)."""
    for name in names:
        value = getattr(cfg, name)
        if optional and value is None:
            continue
        require(value >= 1, name, ">= 1" + (" or null" if optional else ""), value)


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> dict:
    """Read a YAML/JSON config file or inline mapping (or start empty) and apply `a.b.c=value` overrides (values parsed as YAML)."""
    cfg: dict = {}
    if path is not None and str(path).lstrip().startswith("{"):
        # an inline mapping (how Snakemake rules pass their params)
        try:  # JSON first: YAML 1.1 would read JSON's 1e-06 as a string
            cfg = json.loads(str(path))
        except json.JSONDecodeError:
            try:
                cfg = yaml.safe_load(str(path))
            except yaml.YAMLError as err:
                raise ConfigError(f"inline --config is not valid JSON or YAML: {err}") from None
        if not isinstance(cfg, dict):
            raise ConfigError(f"inline --config must be a mapping, got {type(cfg).__name__}")
    elif path is not None:
        path = Path(path)
        if not path.exists():
            raise ConfigError(f"config file not found: {path}")
        try:
            cfg = yaml.safe_load(read_text(path)) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML: {err}") from None
        if not isinstance(cfg, dict):
            raise ConfigError(f"{path}: top level must be a mapping, got {type(cfg).__name__}")
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key.sub=value")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as err:
            raise ConfigError(f"override {key.strip()}: value is not valid YAML: {err}") from None
        set_dotted(cfg, key.strip(), value)
    return cfg


def set_dotted(cfg: dict, dotted: str, value: Any) -> None:
    node = cfg
    parts = dotted.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {dotted!r}: {part!r} is not a section")
    node[parts[-1]] = value


def from_dict(cls: type[T], data: dict | None, prefix: str = "") -> T:
    """Build dataclass `cls` from `data`, recursing into nested dataclass fields."""
    if not isinstance(data, dict | None):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a mapping, got {type(data).__name__}")
    data = dict(data or {})
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        where = prefix.rstrip(".") or "config"
        raise ConfigError(
            f"unknown key {prefix}{unknown[0]!s} in {where}; valid keys: {', '.join(sorted(fields))}"
        )
    kwargs = {}
    for name, value in data.items():
        default = _field_default(fields[name])
        if dataclasses.is_dataclass(default) and isinstance(value, dict):
            # a partial section overrides the field's own default (e.g. RL's sampling), not the class's
            value = _deep_merge(dataclasses.asdict(default), value)
        kwargs[name] = _coerce(hints[name], value, f"{prefix}{name}")
    try:
        return cls(**kwargs)
    except ConfigError as err:  # a range check in __post_init__ names the key within its section
        raise ConfigError(f"{prefix}{err}") from None


def _field_default(f: dataclasses.Field) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None if f.default is dataclasses.MISSING else f.default


def _deep_merge(base: dict, override: dict) -> dict:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


_DOTLESS_EXPONENT = re.compile(r"[-+]?\d+[eE][-+]?\d+")


def _coerce(hint: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return from_dict(hint, value, prefix=f"{key}.")
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        non_none = [a for a in args if a is not type(None)]
        errors = []
        for arg in non_none:
            try:
                return _coerce(arg, value, key)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0])
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        inner = args[0] if args else Any
        return [_coerce(inner, v, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return dict(value)
    if hint is Any:
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str) and _DOTLESS_EXPONENT.fullmatch(value.strip()):
        return float(value)  # YAML 1.1 reads 3e-6 (no dot) as a string; users type it for learning rates
    if hint is bool and not isinstance(value, bool):
        raise ConfigError(f"{key}: expected true/false, got {value!r}")
    if hint in (int, float, str) and (not isinstance(value, hint) or isinstance(value, bool) and hint is not bool):
        raise ConfigError(f"{key}: expected {hint.__name__}, got {value!r}")
    return value


def to_dict(obj: Any) -> dict:
    return dataclasses.asdict(obj)


def flatten(cfg: dict, prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}: for logging configs as MLflow params."""
    flat = {}
    for key, value in cfg.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = json.dumps(value) if isinstance(value, (list, tuple)) else value
    return flat
