"""A socket guard for child processes: any connect or name lookup beyond loopback is refused.

Put this directory first on ``PYTHONPATH`` and name a file in
``LOOPBACK_GUARD_LOG``: Python imports ``sitecustomize`` at startup, the
guard patches ``socket.socket.connect``/``connect_ex``, asyncio's
``sock_connect`` and ``socket.getaddrinfo``, and every refused attempt is
appended to the log (and raised as ``PermissionError`` before any packet
leaves), so a test can fail on it even when the program swallows the error.
"""

from __future__ import annotations

import asyncio.selector_events
import ipaddress
import os
import socket
from typing import Any

_LOG = os.environ.get("LOOPBACK_GUARD_LOG", "")


def _loopback(host: Any) -> bool:
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    name = str(host).strip("[]").split("%", 1)[0].lower()
    if name in ("", "localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False  # a name other than localhost: resolving it would ask a DNS server


def _refuse(what: str) -> None:
    if _LOG:
        with open(_LOG, "a", encoding="utf-8") as fh:
            fh.write(what + "\n")
    raise PermissionError(f"loopback guard: refused {what}")


def _check(family: int, address: Any, how: str) -> None:
    if family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple):
        if not _loopback(address[0]):
            _refuse(f"{how} {address[0]}:{address[1]}")


_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex
_getaddrinfo = socket.getaddrinfo
_sock_connect = asyncio.selector_events.BaseSelectorEventLoop.sock_connect


def connect(self: socket.socket, address: Any) -> None:
    _check(self.family, address, "connect")
    _connect(self, address)


def connect_ex(self: socket.socket, address: Any) -> int:
    _check(self.family, address, "connect")
    return _connect_ex(self, address)


def _ip_literal(host: Any) -> bool:
    try:
        ipaddress.ip_address(str(host).strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    return True


def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    # An address literal needs no DNS query (its connect is checked); a name does.
    if not _loopback(host) and not _ip_literal(host):
        _refuse(f"getaddrinfo {host}")
    return _getaddrinfo(host, *args, **kwargs)


async def sock_connect(self: Any, sock: socket.socket, address: Any) -> None:
    _check(sock.family, address, "sock_connect")
    await _sock_connect(self, sock, address)


socket.socket.connect = connect  # type: ignore[method-assign]
socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
socket.getaddrinfo = getaddrinfo
asyncio.selector_events.BaseSelectorEventLoop.sock_connect = sock_connect  # type: ignore[method-assign]
