"""The MongoDB stand-in's mongod-like limits: size caps, the unauthenticated command set
checked before decoding, idle unauthenticated connections closed, a connection cap."""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator

import bson
import pytest

from pool.errors import ConfigurationError
from pool.standins.authority import CredentialAuthority
from pool.standins.mongo import MongoStandIn, wire
from pool.standins.mongo.limits import MongoLimits, peek_command_name
from tests.standins.mongo_fixtures import *  # noqa: F403
from tests.standins.mongo_fixtures import RawConnection, op_msg


def _insert_with_sequence(n_docs: int, doc_size: int) -> bytes:
    """An OP_MSG insert whose documents travel in a document sequence (kind 1)."""
    body = bson.encode({"insert": "t", "$db": "shop"})
    docs = b"".join(bson.encode({"x": "y" * doc_size}) for _ in range(n_docs))
    ident = b"documents\x00"
    sequence = struct.pack("<i", 4 + len(ident) + len(docs)) + ident + docs
    payload = struct.pack("<I", 0) + b"\x00" + body + b"\x01" + sequence
    return struct.pack("<iiii", 16 + len(payload), 7, 0, 2013) + payload


@pytest.fixture
async def limited(mongo_authority: CredentialAuthority) -> AsyncIterator[MongoStandIn]:
    limits = MongoLimits(
        max_unauthenticated_message_size=wire.MAX_MESSAGE_SIZE,
        unauthenticated_idle_timeout=0.3,
        max_connections=3,
    )
    async with MongoStandIn(mongo_authority, limits=limits) as server:
        yield server


async def test_unauthenticated_large_sequence_is_refused_undecoded(
    limited: MongoStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unauthenticated 8 MB insert gets Unauthorized (13) without one BSON decode."""
    decoded: list[int] = []
    real = wire._decode_doc
    monkeypatch.setattr(wire, "_decode_doc", lambda d, o: decoded.append(o) or real(d, o))
    async with RawConnection.open(limited) as conn:
        await conn.send(_insert_with_sequence(8, 1024 * 1024))
        response_to, _, payload = await conn.reply()
        reply = bson.decode(payload[5:])
        assert response_to == 7 and reply["code"] == 13 and "insert" in reply["errmsg"]
        assert decoded == []
        assert (await conn.command({"ping": 1, "$db": "admin"}))["ok"] == 1.0  # still usable
    assert limited.limit_stats.unauthenticated_refused == 1


async def test_unauthenticated_frames_are_size_capped_by_default(
    mongo_server: MongoStandIn,
) -> None:
    """By default an unauthenticated client cannot send a frame over 64 KiB: closed unread."""
    async with RawConnection.open(mongo_server) as conn:
        await conn.send(struct.pack("<iiii", 18_000_000, 1, 0, 2013))
        assert await conn.closed_by_server()
    assert mongo_server.stats.protocol_errors == 1


async def test_idle_unauthenticated_connections_are_closed(limited: MongoStandIn) -> None:
    """A connection that never authenticates and goes quiet is closed after the idle timeout."""
    async with RawConnection.open(limited) as conn:
        assert (await conn.command({"hello": 1, "$db": "admin"}))["ok"] == 1.0
        await conn.send(b"\x10\x00")  # half a header, then nothing (half-open / slowloris)
        assert await conn.closed_by_server()
    assert limited.limit_stats.idle_closed == 1


async def test_connection_cap_refuses_new_connections_only(limited: MongoStandIn) -> None:
    """Past max_connections a new connection is closed at once; open ones keep working."""
    async with RawConnection.open(limited) as a, RawConnection.open(limited) as b:
        async with RawConnection.open(limited) as c:
            for conn in (a, b, c):
                assert (await conn.command({"ping": 1, "$db": "admin"}))["ok"] == 1.0
            async with RawConnection.open(limited) as refused:
                assert await refused.closed_by_server()
            assert (await a.command({"ping": 1, "$db": "admin"}))["ok"] == 1.0
        async with RawConnection.open(limited) as again:  # room again
            assert (await again.command({"ping": 1, "$db": "admin"}))["ok"] == 1.0
    assert limited.limit_stats.connections_refused == 1


def test_peek_reads_the_command_name_without_decoding() -> None:
    """The command name comes from the body section's first key, past any sequence."""
    frame = _insert_with_sequence(2, 10)
    assert peek_command_name(2013, frame[16:]) == "insert"
    assert peek_command_name(2013, op_msg({"saslStart": 1})[16:]) == "saslStart"
    assert peek_command_name(2013, b"\x00" * 5 + b"\x05\x00\x00\x00\x01") is None


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"max_message_size": 10}, "max_message_size"),
        ({"max_unauthenticated_message_size": 10}, "max_unauthenticated_message_size"),
        ({"unauthenticated_idle_timeout": 0}, "unauthenticated_idle_timeout"),
        ({"max_connections": 0}, "max_connections"),
    ],
)
def test_limits_are_validated(kwargs: dict[str, float], named: str) -> None:
    """Each limit is checked on its own and the message names it."""
    with pytest.raises(ConfigurationError, match=named):
        MongoLimits(**kwargs)  # type: ignore[arg-type]
