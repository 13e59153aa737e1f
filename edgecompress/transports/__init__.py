"""Transports: how the host reaches a device (``ssh``, ``adb``, ``local``)."""
from __future__ import annotations

from ..registry import Registry
from .base import CommandResult, TransferResult, Transport, quote_argv

TRANSPORTS: Registry = Registry("transport")
TRANSPORTS.register("local", "edgecompress.transports.local:LocalTransport")
TRANSPORTS.register("ssh", "edgecompress.transports.ssh:SSHTransport")
TRANSPORTS.register("adb", "edgecompress.transports.adb:AdbTransport")


def open_transport(target, **options) -> Transport:
    """A (lazily connecting) transport for ``target`` (a :class:`~edgecompress.targets.Target`)."""
    cls = TRANSPORTS.get(target.transport)
    return cls.from_target(target, **options)


__all__ = ["TRANSPORTS", "CommandResult", "TransferResult", "Transport", "open_transport", "quote_argv"]
