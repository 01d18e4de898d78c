"""A socket guard: any connect, sendto or name lookup off loopback fails the test.

The tests of ``mongodb+srv`` resolve names; this proves no query reaches a
real DNS server and no connection leaves 127.0.0.0/8 or ::1. Installed
beneath :func:`~pool.standins.mongo.srv.loopback_resolution`, so a name the
stand-in's zone does not cover is refused here instead of going to glibc.

uvloop does its lookups, connects and datagrams in libuv, past the socket
module: when uvloop is installed, ``uvloop.Loop``'s ``getaddrinfo``,
``create_connection`` and ``create_datagram_endpoint`` are guarded too (its
``sock_connect`` calls ``sock.connect``, guarded above). uvloop 0.23.
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
        _check_lookup(host, looked_up)
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
    _guard_uvloop(monkeypatch, looked_up)
    yield looked_up


def _check_lookup(host: Any, looked_up: list[str]) -> None:
    if isinstance(host, bytes):
        host = host.decode()
    if isinstance(host, str) and host:
        looked_up.append(host)
        try:
            if not ipaddress.ip_address(host.split("%", 1)[0]).is_loopback:
                raise NonLoopbackError(f"lookup of non-loopback address {host}")
        except ValueError:
            if host != "localhost":
                raise NonLoopbackError(f"name {host!r} would go to the system resolver") from None


def _guard_uvloop(monkeypatch: pytest.MonkeyPatch, looked_up: list[str]) -> None:
    try:
        import uvloop
    except ImportError:
        return
    cls = uvloop.Loop
    lookup, connect, datagram = cls.getaddrinfo, cls.create_connection, cls.create_datagram_endpoint

    async def getaddrinfo(self: Any, host: Any, port: Any, **kwargs: Any) -> Any:
        _check_lookup(host, looked_up)
        return await lookup(self, host, port, **kwargs)

    async def create_connection(
        self: Any, factory: Any, host: Any = None, *a: Any, **k: Any
    ) -> Any:
        if host is not None:
            _check_lookup(host, [])
        return await connect(self, factory, host, *a, **k)

    async def create_datagram_endpoint(self: Any, factory: Any, *a: Any, **k: Any) -> Any:
        for address in (*a[:2], k.get("local_addr"), k.get("remote_addr")):
            if isinstance(address, tuple) and address:
                _check_lookup(address[0], [])
        return await datagram(self, factory, *a, **k)

    monkeypatch.setattr(cls, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(cls, "create_connection", create_connection)
    monkeypatch.setattr(cls, "create_datagram_endpoint", create_datagram_endpoint)
