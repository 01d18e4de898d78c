"""``mongodb+srv`` on loopback: a DNS stand-in and a way to point PyMongo at it.

Atlas publishes, for ``mongodb+srv://cluster0.abcde.mongodb.net``, an SRV
record ``_mongodb._tcp.cluster0.abcde.mongodb.net`` listing every member
(``cluster0-shard-00-00.abcde.mongodb.net:27017``...), a TXT record
``authSource=admin&replicaSet=atlas-...-shard-0``, and A records for the
member names. :class:`DnsStandIn` serves the same shapes for a zone such as
``cluster0.pool.test`` (``.test`` is reserved for testing, RFC 2606), over
UDP and TCP on one loopback port, answering only for its zone (REFUSED
elsewhere, NXDOMAIN for unknown names in it, as an authoritative server).
Messages are encoded with dnspython, already PyMongo's SRV resolver.

Two resolutions must land on it, and :func:`loopback_resolution` (in
:mod:`pool.standins.mongo.resolution`) points both there, in-process, for
the duration of a ``with`` block:

- PyMongo resolves SRV and TXT with dnspython (``dns.resolver.resolve``
  for ``MongoClient``, ``dns.asyncresolver.resolve`` for
  ``AsyncMongoClient``; read in PyMongo 4.20.1 ``srv_resolver.py``); both
  use the module's default resolver, which is replaced by one whose only
  nameserver is the stand-in;
- PyMongo then connects to each member by name. The sync driver (so Motor,
  which runs it in threads) calls ``socket.getaddrinfo``; the async driver
  calls ``loop.getaddrinfo`` (``pymongo.asynchronous.helpers._getaddrinfo``),
  which on asyncio's loop runs ``socket.getaddrinfo`` in a thread and on
  uvloop goes to libuv, never to ``socket.getaddrinfo``. None of them goes
  through dnspython, and on this machine glibc resolves ``*.localhost``
  names through DNS, not to loopback. So ``socket.getaddrinfo`` is wrapped
  and, when uvloop is installed, ``uvloop.Loop.getaddrinfo`` too: names
  inside the zone are looked up (A records) at the stand-in, everything
  else goes to the original untouched. A running loop whose
  ``getaddrinfo`` is neither is refused on entry
  (:class:`LoopbackResolutionError`), so a zone name never reaches the
  system resolver. uvloop's ``create_connection`` (which calls libuv
  itself) is hooked too; its ``create_server`` and
  ``create_datagram_endpoint`` refuse zone names.

The ``socket.getaddrinfo`` lookups are synchronous (dnspython's resolver,
in the calling thread): a sync client or a bare ``socket.getaddrinfo`` on
the thread of the loop that serves the DNS stand-in would wait for itself.
Run such callers in a thread (``anyio.to_thread``), or the stand-ins on
their own (``ThreadedStandIns``, ``python -m pool emulate``). uvloop's are
asynchronous, on the loop.

PyMongo requires SRV targets to share the parent domain of the SRV name
(``m0.cluster0.pool.test`` for ``cluster0.pool.test``), and a
``mongodb+srv`` URI turns TLS on unless it says ``tls=false``. The TXT
record says ``authSource=admin`` like Atlas's: MONGODB-AWS needs
``authSource=$external`` from the URI or the client options, which win.
"""

from __future__ import annotations

import asyncio
import ipaddress
import struct
from collections.abc import Sequence
from typing import Any, cast
from urllib.parse import quote

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from pool._internal.log import get_logger
from pool._internal.resource import AsyncResource
from pool.errors import ConfigurationError
from pool.standins.mongo.cluster import MongoCluster
from pool.standins.mongo.resolution import LoopbackResolutionError, loopback_resolution

__all__ = [
    "DnsStandIn",
    "LoopbackResolutionError",
    "loopback_resolution",
    "member_names",
    "publish",
    "srv_uri",
]

log = get_logger("pool.standins.dns")
TTL = 60


class DnsStandIn(AsyncResource):
    """An authoritative DNS server for one zone, on a loopback UDP+TCP port."""

    def __init__(self, zone: str) -> None:
        self.zone = dns.name.from_text(zone)
        self._records: dict[tuple[dns.name.Name, int], list[str]] = {}
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._address: tuple[str, int] | None = None
        self.queries = 0

    # -- records ---------------------------------------------------------

    def add(self, name: str, rdtype: str, *values: str) -> None:
        """Add records, e.g. ``add("m0.cluster0.pool.test", "A", "127.0.0.1")``."""
        owner = dns.name.from_text(name)
        if not owner.is_subdomain(self.zone):
            raise ConfigurationError(f"{name} is outside the zone {self.zone}")
        key = (owner, dns.rdatatype.from_text(rdtype))
        self._records.setdefault(key, []).extend(values)

    def publish_cluster(
        self, members: Sequence[tuple[str, int]], *, txt: str, service: str = "mongodb"
    ) -> None:
        """SRV ``_<service>._tcp.<zone>`` -> every member, TXT ``txt``, A per member name."""
        srv = f"_{service}._tcp.{self.zone}"
        self.add(srv, "SRV", *(f"0 0 {port} {host}." for host, port in members))
        self.add(str(self.zone), "TXT", f'"{txt}"')
        for host, _port in members:
            self.add(host, "A", "127.0.0.1")

    # -- lifecycle ---------------------------------------------------------

    async def __aenter__(self) -> DnsStandIn:
        if self._address is None:
            await self.start()
        return self

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        """Listen on UDP and TCP ``host:port`` (0: a port free for both); return it."""
        if not ipaddress.ip_address(host).is_loopback:
            raise ConfigurationError(f"the DNS stand-in listens on loopback only, not {host}")
        loop = asyncio.get_running_loop()
        self._tcp = await asyncio.start_server(self._serve_tcp, host, port)
        bound = self._tcp.sockets[0].getsockname()[1]
        self._udp, _ = await loop.create_datagram_endpoint(
            lambda: _Udp(self), local_addr=(host, bound)
        )
        self._address = (host, bound)
        log.info("dns.listening", address=f"{host}:{bound}", zone=str(self.zone))
        return self._address

    async def aclose(self) -> None:
        """Stop both listeners. Idempotent."""
        udp, self._udp = self._udp, None
        tcp, self._tcp = self._tcp, None
        if udp is not None:
            udp.close()
        if tcp is not None:
            tcp.close()
            await tcp.wait_closed()

    @property
    def address(self) -> tuple[str, int]:
        if self._address is None:
            raise ConfigurationError("DnsStandIn not started: await start() first")
        return self._address

    # -- answering ---------------------------------------------------------

    def answer(self, wire: bytes) -> bytes | None:
        """The response to one query message (None for undecodable input: dropped)."""
        try:
            query = dns.message.from_wire(wire)
        except Exception:
            return None
        self.queries += 1
        response = dns.message.make_response(query)
        if not query.question:
            response.set_rcode(dns.rcode.FORMERR)
            return response.to_wire()
        question = query.question[0]
        if not question.name.is_subdomain(self.zone):
            response.set_rcode(dns.rcode.REFUSED)
            return response.to_wire()
        response.flags |= dns.flags.AA
        values = self._records.get((question.name, question.rdtype))
        if values:
            response.answer.append(
                dns.rrset.from_text_list(
                    question.name, TTL, dns.rdataclass.IN, question.rdtype, values
                )
            )
        elif not any(name == question.name for name, _ in self._records):
            response.set_rcode(dns.rcode.NXDOMAIN)
        return response.to_wire()

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                (size,) = struct.unpack("!H", await reader.readexactly(2))
                reply = self.answer(await reader.readexactly(size))
                if reply is None:
                    break
                writer.write(struct.pack("!H", len(reply)) + reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def resolve_a(self, name: str) -> list[str]:
        """The A records of ``name`` straight from the zone (no packet sent)."""
        return list(self._records.get((dns.name.from_text(name), dns.rdatatype.A), []))


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, server: DnsStandIn) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        reply = self.server.answer(data)
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)


def member_names(zone: str, count: int) -> list[str]:
    """``m0.<zone>``, ``m1.<zone>``...: names PyMongo accepts as SRV targets of ``zone``."""
    return [f"m{i}.{zone}" for i in range(count)]


def publish(dns_server: DnsStandIn, cluster: MongoCluster) -> None:
    """Publish ``cluster`` (started, advertised by name) as Atlas does: SRV, TXT, A."""
    members = [(h.rsplit(":", 1)[0], int(h.rsplit(":", 1)[1])) for h in cluster.hosts]
    txt = "authSource=admin" + (f"&replicaSet={cluster.set_name}" if cluster.set_name else "")
    dns_server.publish_cluster(members, txt=txt)


def srv_uri(zone: str, cluster: MongoCluster) -> str:
    """``mongodb+srv://<zone>/?authSource=%24external`` plus what TLS needs (or ``tls=false``).

    ``authSource=$external`` is what Atlas's own instructions for AWS IAM put
    in the URI: the TXT record's ``authSource=admin`` would otherwise apply.
    """
    uri = f"mongodb+srv://{zone}/?authSource=%24external"
    if cluster.tls_ca_file is None:
        return uri + "&tls=false"  # mongodb+srv turns TLS on by default
    return uri + f"&tlsCAFile={quote(cluster.tls_ca_file, safe='')}"
