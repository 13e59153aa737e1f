"""YAML loading and validation shared by profiles, targets and passes.

Errors name the file, the key path, the bad value, what is valid and, for an
unknown key or value, the closest valid one.
"""
from __future__ import annotations

import typing
from pathlib import Path
from typing import Any, Type, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from .errors import ConfigError
from .registry import suggest

M = TypeVar("M", bound=BaseModel)


class Strict(BaseModel):
    """Base for every config schema: unknown keys are errors, values checked on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


def load_yaml(path: Path, error: Type[ConfigError] = ConfigError) -> Any:
    import yaml

    path = Path(path)
    if not path.exists():
        raise error(f"{path}: file not found")
    if path.is_dir():
        raise error(f"{path}: is a folder, expected a YAML file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise error(f"{path}: cannot read: {e}") from e
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        where = ""
        mark = getattr(e, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(e, "problem", None) or str(e)
        raise error(f"{path}: malformed YAML{where}: {problem}") from e


def _allowed_keys(model: Type[BaseModel], loc: tuple) -> list[str]:
    """Field names of the (nested) model that owns the key at ``loc``."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        if isinstance(current, type) and issubclass(current, BaseModel) and part in current.model_fields:
            current = current.model_fields[part].annotation
            # unwrap Optional[X] / list[X] / X | None
            for _ in range(3):
                args = [a for a in typing.get_args(current) if a is not type(None)]
                if isinstance(current, type) and issubclass(current, BaseModel):
                    break
                if args:
                    current = args[0]
        else:
            return []
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def format_errors(model: Type[BaseModel], exc: ValidationError, source: str, prefix: tuple = ()) -> str:
    lines = []
    for err in exc.errors():
        loc = prefix + tuple(err["loc"])
        path = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in loc).replace(".[", "[")
        kind = err["type"]
        value = err.get("input")
        if kind == "extra_forbidden":
            valid = _allowed_keys(model, tuple(err["loc"]))
            msg = f"unknown key {str(loc[-1])!r}{suggest(loc[-1], valid)}; valid keys: {', '.join(valid)}"
        elif kind in ("literal_error", "enum"):
            expected = err.get("ctx", {}).get("expected", "")
            options = [o.strip().strip("'\"") for o in expected.replace(" or ", ",").split(",") if o.strip()]
            msg = f"bad value {value!r}{suggest(value, options)}; valid values: {', '.join(options)}"
        elif kind == "missing":
            msg = "required key is missing"
        else:
            msg = f"bad value {value!r}: {err['msg']}"
        lines.append(f"{source}: {path or '(top level)'}: {msg}")
    return "\n".join(lines)


def validate(model: Type[M], data: Any, source: str, error: Type[ConfigError] = ConfigError,
             prefix: tuple = ()) -> M:
    if not isinstance(data, dict):
        raise error(f"{source}: expected a mapping of keys to values, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise error(format_errors(model, e, source, prefix)) from None
