"""TLS for the stand-ins: a throwaway CA and server certificate made at start (trustme).

Atlas serves TLS only, with a certificate for each member's host name. A
:class:`TlsMaterial` makes a CA and one server certificate valid for every
name and address the stand-ins listen on or advertise (``localhost``,
``127.0.0.1``, ``::1`` and any member names given), writes the CA as a PEM
file for clients (PyMongo's ``tlsCAFile``) and hands servers their
``ssl.SSLContext``. Nothing is trusted system-wide; the files live in a
temporary directory removed by :meth:`TlsMaterial.close`.

Key material here is the stand-in's own and worthless outside it.
"""

from __future__ import annotations

import asyncio
import ssl
import tempfile
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, cast

from pool.errors import ConfigurationError

__all__ = ["TlsFirstProtocol", "TlsMaterial", "start_tls_first_server"]

_ALWAYS = ("localhost", "127.0.0.1", "::1")


class TlsMaterial:
    """A CA and one server certificate for ``names`` (plus loopback); see the module doc."""

    def __init__(self, names: Iterable[str] = ()) -> None:
        try:
            import trustme
        except ImportError as exc:  # pragma: no cover - the standins extra brings it
            raise ConfigurationError(
                "TLS stand-ins need the 'trustme' package: pip install 'mongodb-aws-pool[standins]'"
            ) from exc
        self.names = list(dict.fromkeys([*_ALWAYS, *names]))
        self._ca = trustme.CA(organization_name="pool stand-in CA")
        self._cert = self._ca.issue_cert(*self.names)
        self._dir: tempfile.TemporaryDirectory[str] | None = tempfile.TemporaryDirectory(
            prefix="pool-standin-tls-"
        )
        self.ca_file = str(Path(self._dir.name) / "ca.pem")
        self._ca.cert_pem.write_to_path(self.ca_file)

    def server_context(self) -> ssl.SSLContext:
        """A server-side context presenting the certificate (TLS 1.2+)."""
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        self._cert.configure_cert(ctx)
        return ctx

    def client_context(self) -> ssl.SSLContext:
        """A client-side context trusting only this CA (for raw-socket tests)."""
        ctx = ssl.create_default_context(cafile=self.ca_file)
        return ctx

    def close(self) -> None:
        """Remove the CA file. Idempotent."""
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def __repr__(self) -> str:
        return f"<TlsMaterial names={self.names!r} ca_file={self.ca_file!r}>"


class TlsFirstProtocol(asyncio.StreamReaderProtocol):
    """A stream protocol whose connections start with a TLS handshake (:meth:`start_tls`).

    uvloop starts reading a connection as soon as it is accepted, before the
    serving task runs: a client that sends its ClientHello at once (the sync
    driver, so Motor) had it read into the ``StreamReader``, where the TLS
    layer never saw it, and the handshake hung until the client gave up.
    asyncio's own loop starts reading one callback later, which hid the race.
    So bytes that arrive before TLS are kept here (reading paused) and handed
    to the TLS protocol once ``start_tls`` has installed it: both loops'
    ``SSLProtocol`` buffer what they are given before their handshake starts
    (CPython 3.11 ``asyncio/sslproto.py``, uvloop 0.23 ``sslproto.pyx``).
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        serve: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
    ) -> None:
        super().__init__(reader, serve)
        self._early: bytearray | None = bytearray()  # None once TLS has started
        self._raw: asyncio.BaseTransport | None = None

    @property
    def bytes_before_tls(self) -> int:
        """Bytes received before :meth:`start_tls` and kept for the TLS layer."""
        return len(self._early or b"")

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._raw = transport
        super().connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._early is None:
            super().data_received(data)
            return
        self._early += data
        cast(asyncio.ReadTransport, self._raw).pause_reading()

    async def start_tls(
        self, writer: asyncio.StreamWriter, context: ssl.SSLContext, handshake_timeout: float
    ) -> None:
        """``writer.start_tls(context)`` (server side), with the bytes read before it.

        Bytes are kept until ``start_tls`` has put its TLS protocol on the
        transport (in its first step): one read may still land between this
        call and that step.
        """
        raw = writer.transport
        upgrade = asyncio.ensure_future(
            writer.start_tls(context, ssl_handshake_timeout=handshake_timeout)
        )
        try:
            for _ in range(8):  # start_tls swaps the protocol in its first step, then waits
                if raw.get_protocol() is not self or upgrade.done():
                    break
                await asyncio.sleep(0)
        except BaseException:
            upgrade.cancel()
            raise
        early, self._early = bytes(self._early or b""), None
        tls = raw.get_protocol()
        if early and tls is not self:
            _feed(tls, early)
        await upgrade


def _feed(protocol: Any, data: bytes) -> None:
    """Hand ``data`` to a buffered protocol as if the transport had read it."""
    view = memoryview(data)
    while view:
        buffer = protocol.get_buffer(len(view))
        size = min(len(buffer), len(view))
        buffer[:size] = view[:size]
        protocol.buffer_updated(size)
        view = view[size:]


async def start_tls_first_server(
    serve: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
    host: str,
    port: int,
) -> asyncio.Server:
    """``asyncio.start_server(serve, host, port)`` with :class:`TlsFirstProtocol` connections."""
    loop = asyncio.get_running_loop()

    def factory() -> asyncio.Protocol:
        return TlsFirstProtocol(asyncio.StreamReader(), serve)

    return await loop.create_server(factory, host, port)
