"""One small registry class, and the name lists the schemas are built from.

Entries are registered eagerly (``@REG.register("name")``) or lazily by a
``"module:attribute"`` string so heavy frameworks are imported only when the
entry is chosen. A miss names the valid entries and the closest one; a duplicate
registration names the place of both registrations.

Instances: ``EXPORTERS`` (exporters/), ``PASSES`` (passes/), ``TRANSPORTS`` (transports/), and here
``AGENTS`` (the device agents, by target ``mode``) and ``METERS`` (the energy meters; the names
come from :mod:`edgecompress.device.meters`, which the device imports without any host package).
The profile and target schemas take their ``Literal`` types from these (``names()``) and from the
exporters' capability table, so a name list is written once.
"""
from __future__ import annotations

import difflib
import importlib
import inspect
from typing import Any, Callable, Generic, Iterator, TypeVar

from .errors import EdgeCompressError, UnknownNameError

T = TypeVar("T")


def suggest(name: str, valid) -> str:
    """`` (did you mean 'x'?)`` for the closest valid name, or ``''``."""
    close = difflib.get_close_matches(str(name), [str(v) for v in valid], n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _caller_place(depth: int = 2) -> str:
    frame = inspect.stack()[depth]
    return f"{frame.filename}:{frame.lineno}"


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Any] = {}
        self._places: dict[str, str] = {}

    def register(self, name: str, obj: T | str | None = None, *, _place: str | None = None):
        """Register ``obj`` (or decorate it) under ``name``; ``obj`` may be ``"module:attr"``."""
        place = _place or _caller_place()

        def add(o):
            if name in self._entries:
                raise EdgeCompressError(
                    f"{self.kind} {name!r} registered twice: at {self._places[name]} and at {place}")
            self._entries[name] = o
            self._places[name] = place
            return o

        if obj is None:
            return add
        return add(obj)

    def get(self, name: str) -> T:
        if name not in self._entries:
            valid = ", ".join(sorted(self._entries)) or "(none)"
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}{suggest(name, self._entries)}; valid: {valid}")
        entry = self._entries[name]
        if isinstance(entry, str):
            module, _, attr = entry.partition(":")
            entry = getattr(importlib.import_module(module), attr)
            self._entries[name] = entry
        return entry

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


#: device agents by target ``mode`` (:mod:`edgecompress.deploy.agents`)
AGENTS: Registry = Registry("agent")
AGENTS.register("python", "edgecompress.deploy.agents:PythonAgent", _place=__file__)
AGENTS.register("native", "edgecompress.deploy.native:NativeAgent", _place=__file__)
#: energy meters by name (the device runner reads the same table: device/meters.py FACTORIES)
METERS: Registry = Registry("meter")
def _register_meters() -> None:
    from .device import meters

    for name in meters.METERS:
        METERS.register(name, meters.FACTORIES.get(name, meters.CommandMeter), _place=meters.__file__)


_register_meters()


def agent_delegates() -> tuple[str, ...]:
    """Every delegate some agent can apply (a profile may list only these)."""
    out: dict[str, None] = {}
    for mode in AGENTS:
        out.update(dict.fromkeys(getattr(AGENTS.get(mode), "delegates", ())))
    return tuple(out)
