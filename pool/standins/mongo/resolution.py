"""Pointing this process's name lookups at the DNS stand-in: :func:`loopback_resolution`.

See :mod:`pool.standins.mongo.srv` for why both dnspython and the
``getaddrinfo`` of the socket module and of uvloop's loop are redirected.
"""

from __future__ import annotations

import asyncio
import asyncio.base_events
import importlib.util
import ipaddress
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dns.asyncresolver
import dns.exception
import dns.name
import dns.resolver

from pool.errors import ConfigurationError

__all__ = ["LoopbackResolutionError", "loopback_resolution"]


def _resolver(cls: Any, address: tuple[str, int]) -> Any:
    resolver = cls(configure=False)
    resolver.nameservers = [address[0]]
    resolver.port = address[1]
    resolver.timeout = resolver.lifetime = 5.0
    return resolver


class LoopbackResolutionError(ConfigurationError):
    """Name lookups on this event loop cannot be pointed at the DNS stand-in.

    Raised on entering :func:`loopback_resolution` rather than letting a
    lookup of a zone name reach the system resolver (and a real DNS server).
    """


@contextmanager
def loopback_resolution(address: tuple[str, int], zone: str) -> Iterator[None]:
    """Resolve SRV/TXT and the member names of ``zone`` at the stand-in at ``address``.

    Process-wide while the block runs (see the module docstring): dnspython's
    default resolvers (sync and async) ask only the stand-in,
    ``socket.getaddrinfo`` answers names in ``zone`` from its A records, and
    so does ``loop.getaddrinfo`` on uvloop. Everything is restored on exit.
    Not reentrant; enter it once per process.

    Raises :class:`LoopbackResolutionError` on entry when the running loop's
    ``getaddrinfo`` is neither asyncio's (which calls ``socket.getaddrinfo``)
    nor uvloop's with the hook in place.
    """
    suffix = dns.name.from_text(zone)
    sync_resolver = _resolver(dns.resolver.Resolver, address)
    async_resolver = _resolver(dns.asyncresolver.Resolver, address)
    saved = (dns.resolver.default_resolver, dns.asyncresolver.default_resolver)
    original = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = _zone_name(host, suffix)
        if name is None:
            return original(host, port, *args, **kwargs)
        try:
            answer = sync_resolver.resolve(name, "A")
        except dns.exception.DNSException as exc:
            raise _gaierror(name, exc) from exc
        out: list[Any] = []
        for record in answer:
            out.extend(original(record.address, port, *args, **kwargs))
        return out

    with _uvloop_hook(suffix, async_resolver):
        dns.resolver.default_resolver = sync_resolver
        dns.asyncresolver.default_resolver = async_resolver
        socket.getaddrinfo = getaddrinfo
        try:
            yield
        finally:
            socket.getaddrinfo = original
            dns.resolver.default_resolver, dns.asyncresolver.default_resolver = saved


def _zone_name(host: Any, suffix: dns.name.Name) -> str | None:
    """``host`` as text when it is a name inside the zone; None: not ours, pass it on."""
    if isinstance(host, bytes):
        host = host.decode()
    if not isinstance(host, str) or not host or _is_ip(host):
        return None
    try:
        name = dns.name.from_text(host)
    except dns.exception.DNSException:
        return None  # not a DNS name ("a..b"): the original refuses it as it would have
    return host if name.is_subdomain(suffix) else None


def _gaierror(name: str, exc: dns.exception.DNSException) -> socket.gaierror:
    if isinstance(exc, dns.resolver.NXDOMAIN):
        return socket.gaierror(socket.EAI_NONAME, f"{name}: not in the stand-in zone")
    return socket.gaierror(socket.EAI_AGAIN, f"{name}: {type(exc).__name__}")


@contextmanager
def _uvloop_hook(suffix: dns.name.Name, resolver: Any) -> Iterator[None]:
    """While the block runs, ``uvloop.Loop`` answers zone names from the stand-in.

    uvloop resolves in libuv (glibc in a libuv thread), never through
    ``socket.getaddrinfo``. ``uvloop.Loop`` is a Python subclass of the
    compiled ``uvloop.loop.Loop`` (uvloop 0.23 ``__init__.py``), so methods
    can be replaced on it: ``getaddrinfo`` (PyMongo 4.20.1's async driver
    resolves through it, and uvloop's ``sock_connect`` looks it up on the
    instance), ``create_connection`` (resolved here, since uvloop's own calls
    libuv directly), and ``create_server`` / ``create_datagram_endpoint``,
    which refuse zone names. Zone names are resolved with dnspython's async
    resolver, on the loop: no thread, no waiting on a stand-in this loop serves.
    """
    cls = _uvloop_class()
    if cls is None:
        _check_running_loop(None)
        yield
        return
    hooks = _uvloop_methods(cls, suffix, resolver)
    before: dict[str, Any] = {}  # what each hooked name was in cls.__dict__
    try:
        for name, method in hooks.items():
            previous = cls.__dict__.get(name, _MISSING)
            setattr(cls, name, method)
            before[name] = previous
    except (AttributeError, TypeError) as exc:
        _restore(cls, before)
        raise LoopbackResolutionError(
            f"cannot hook {cls.__module__}.{cls.__qualname__}.{name} ({exc}): zone names "
            "would go to the system resolver; use the member-list URI (Emulator.mongodb_uri)"
        ) from exc
    try:
        _check_running_loop(hooks["getaddrinfo"])
        yield
    finally:
        _restore(cls, before)


def _restore(cls: type[Any], before: dict[str, Any]) -> None:
    for name, method in before.items():
        if method is not _MISSING:
            setattr(cls, name, method)
        elif name in cls.__dict__:
            delattr(cls, name)


def _uvloop_methods(cls: type[Any], suffix: dns.name.Name, resolver: Any) -> dict[str, Any]:
    """The replacements for ``cls``'s name-taking methods (see :func:`_uvloop_hook`)."""
    lookup, connect = cls.getaddrinfo, cls.create_connection
    serve, datagram = cls.create_server, cls.create_datagram_endpoint

    async def getaddrinfo(
        self: Any,
        host: Any,
        port: Any,
        *,
        family: int = 0,
        type: int = 0,
        proto: int = 0,
        flags: int = 0,
    ) -> Any:
        kwargs = {"family": family, "type": type, "proto": proto}
        name = _zone_name(host, suffix)
        if name is None:
            return await lookup(self, host, port, flags=flags, **kwargs)
        try:
            answer = await resolver.resolve(name, "A")
        except dns.exception.DNSException as exc:
            raise _gaierror(name, exc) from exc
        out: list[Any] = []
        for record in answer:  # an address literal: AI_NUMERICHOST, no query can follow
            numeric = flags | socket.AI_NUMERICHOST
            out.extend(await lookup(self, record.address, port, flags=numeric, **kwargs))
        return out

    async def create_connection(
        self: Any, factory: Any, host: Any = None, port: Any = None, **kwargs: Any
    ) -> Any:
        _refuse_zone_names(suffix, "create_connection local_addr", kwargs.get("local_addr"))
        name = _zone_name(host, suffix)
        if name is not None:
            found = await getaddrinfo(
                self, name, port, family=kwargs.get("family", 0), type=socket.SOCK_STREAM
            )
            host = found[0][4][0]
            if kwargs.get("ssl") and kwargs.get("server_hostname") is None:
                kwargs["server_hostname"] = name  # what asyncio would verify: the name
        return await connect(self, factory, host, port, **kwargs)

    async def create_server(
        self: Any, factory: Any, host: Any = None, port: Any = None, **kwargs: Any
    ) -> Any:
        hosts = host if isinstance(host, list | tuple) else [host]
        _refuse_zone_names(suffix, "create_server", *((h, 0) for h in hosts))
        return await serve(self, factory, host, port, **kwargs)

    async def create_datagram_endpoint(
        self: Any, factory: Any, local_addr: Any = None, remote_addr: Any = None, **kwargs: Any
    ) -> Any:
        _refuse_zone_names(suffix, "create_datagram_endpoint", local_addr, remote_addr)
        return await datagram(self, factory, local_addr, remote_addr, **kwargs)

    return {
        "getaddrinfo": getaddrinfo,
        "create_connection": create_connection,
        "create_server": create_server,
        "create_datagram_endpoint": create_datagram_endpoint,
    }


def _refuse_zone_names(suffix: dns.name.Name, where: str, *addresses: Any) -> None:
    for address in addresses:
        if isinstance(address, tuple) and address and _zone_name(address[0], suffix):
            raise LoopbackResolutionError(
                f"{where} was given {address[0]!r}, a name in the stand-in zone, which uvloop "
                "would resolve through the system resolver; pass its address (loop.getaddrinfo "
                "answers it)"
            )


_MISSING = object()


def _uvloop_class() -> type[Any] | None:
    """``uvloop.Loop`` when uvloop is installed (a loop made later must be covered too)."""
    if importlib.util.find_spec("uvloop") is None:
        return None
    import uvloop

    return uvloop.Loop


def _check_running_loop(hook: Any) -> None:
    """Refuse a running loop whose ``getaddrinfo`` would bypass both redirections."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    method = getattr(loop.getaddrinfo, "__func__", None)
    if method is asyncio.base_events.BaseEventLoop.getaddrinfo:
        return  # runs socket.getaddrinfo in a thread: the wrapper answers
    if hook is not None and method is hook:
        return
    raise LoopbackResolutionError(
        f"the running loop ({type(loop).__module__}.{type(loop).__qualname__}) resolves names "
        "with its own getaddrinfo, which loopback_resolution cannot redirect: zone names would "
        "go to the system resolver. Use asyncio's loop or uvloop.Loop (uvloop.new_event_loop), "
        "or the member-list URI (Emulator.mongodb_uri)"
    )


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True
