"""A socket guard: any connect, sendto or name lookup off loopback fails the test.

The tests of ``mongodb+srv`` resolve names; this proves no query reaches a
real DNS server and no connection leaves 127.0.0.0/8 or ::1. Installed
beneath :func:`~pool.standins.mongo.srv.loopback_resolution`, so a name the
stand-in's zone does not cover is refused here instead of going to glibc.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from typing import Any

import pytest

__all__ = ["NonLoopbackError", "loopback_only"]


class NonLoopbackError(AssertionError):
    """A test tried to reach something that is not loopback."""


def _check_address(address: Any) -> None:
    if isinstance(address, tuple) and address and isinstance(address[0], str):
        host = address[0].split("%", 1)[0]
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            raise NonLoopbackError(f"connect/sendto by name {host!r}") from None
        if not ip.is_loopback:
            raise NonLoopbackError(f"connect/sendto to non-loopback {host}")


@pytest.fixture
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Refuse non-loopback sockets and lookups; yields the names that were looked up."""
    looked_up: list[str] = []
    original_getaddrinfo = socket.getaddrinfo
    cls = socket.socket
    original = {name: getattr(cls, name) for name in ("connect", "connect_ex", "sendto")}

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host:
            looked_up.append(host)
            try:
                if not ipaddress.ip_address(host.split("%", 1)[0]).is_loopback:
                    raise NonLoopbackError(f"lookup of non-loopback address {host}")
            except ValueError:
                if host != "localhost":
                    raise NonLoopbackError(
                        f"name {host!r} would go to the system resolver"
                    ) from None
        return original_getaddrinfo(host, port, *args, **kwargs)

    def guarded(name: str) -> Any:
        def method(self: socket.socket, *args: Any) -> Any:
            if self.family in (socket.AF_INET, socket.AF_INET6):
                _check_address(args[-1])
            return original[name](self, *args)

        return method

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    for name in original:
        monkeypatch.setattr(cls, name, guarded(name))
    yield looked_up
