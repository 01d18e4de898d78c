"""The wire layer: frame decoding and the server's robustness against malformed input."""

from __future__ import annotations

import struct

import bson
import pytest

from pool.standins.mongo import MongoStandIn
from pool.standins.mongo.wire import (
    OP_MSG,
    OP_QUERY,
    Request,
    WireProtocolError,
    encode_reply,
    parse_request,
)
from tests.standins.mongo_fixtures import *  # noqa: F403
from tests.standins.mongo_fixtures import RawConnection, op_msg


def _sequence(ident: str, docs: list[dict[str, object]]) -> bytes:
    payload = ident.encode() + b"\x00" + b"".join(bson.encode(d) for d in docs)
    return b"\x01" + struct.pack("<i", 4 + len(payload)) + payload


def _op_query(doc: dict[str, object], ns: str = "admin.$cmd", request_id: int = 7) -> bytes:
    body = struct.pack("<i", 0) + ns.encode() + b"\x00" + struct.pack("<ii", 0, -1)
    body += bson.encode(doc)
    return struct.pack("<iiii", 16 + len(body), request_id, 0, OP_QUERY) + body


def test_op_msg_document_sequences_merge_into_the_body() -> None:
    """Kind-1 sections (PyMongo's insert batches) arrive as a list field of the command."""
    payload = struct.pack("<IB", 0, 0) + bson.encode({"insert": "c", "$db": "d"})
    payload += _sequence("documents", [{"_id": 1}, {"_id": 2}])
    req = parse_request(5, OP_MSG, payload)
    assert req.body["documents"] == [{"_id": 1}, {"_id": 2}]
    assert (req.db, req.command_name, req.more_to_come) == ("d", "insert", False)


def test_op_msg_more_to_come_and_exhaust_flags_are_read() -> None:
    """moreToCome (w=0 writes) and exhaustAllowed are decoded from the flag bits."""
    payload = struct.pack("<IB", (1 << 1) | (1 << 16), 0) + bson.encode({"ping": 1, "$db": "a"})
    req = parse_request(5, OP_MSG, payload)
    assert req.more_to_come and req.exhaust_allowed


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        struct.pack("<IB", 1 << 5, 0) + bson.encode({"ping": 1}),  # unknown required flag bit
        struct.pack("<IB", 0, 9) + bson.encode({"ping": 1}),  # unknown section kind
        struct.pack("<IB", 0, 0) + b"\x40\x00\x00\x00\x00",  # BSON length overruns
        struct.pack("<IB", 0, 0) + b"\x0c\x00\x00\x00\x10a\x00\x01\x00\x00\x00\x01",  # bad BSON
        struct.pack("<I", 0) + _sequence("documents", [{"a": 1}]),  # no body section
        struct.pack("<IB", 0, 0) + bson.encode({"ping": 1}) * 2,  # two bodies
    ],
)
def test_malformed_op_msg_is_a_protocol_error(payload: bytes) -> None:
    """Garbled OP_MSG payloads raise WireProtocolError, never anything else."""
    with pytest.raises(WireProtocolError):
        parse_request(1, OP_MSG, payload)


def test_reply_answers_the_request_id_with_the_matching_op_code() -> None:
    """Replies carry responseTo = the request id; OP_QUERY gets an OP_REPLY."""
    for op_code, reply_code in ((OP_MSG, OP_MSG), (OP_QUERY, 1)):
        frame = encode_reply(Request(41, op_code, {}, "admin"), {"ok": 1.0}, 9)
        length, rid, response_to, got = struct.unpack_from("<iiii", frame)
        assert (length, rid, response_to, got) == (len(frame), 9, 41, reply_code)


async def test_legacy_op_query_hello_gets_an_op_reply(mongo_server: MongoStandIn) -> None:
    """The legacy first isMaster over OP_QUERY is answered with OP_REPLY."""
    async with RawConnection.open(mongo_server) as conn:
        await conn.send(_op_query({"isMaster": 1, "helloOk": True}))
        response_to, op_code, payload = await conn.reply()
        doc = bson.decode(payload[20:])
    assert (response_to, op_code) == (7, 1)
    assert doc["ismaster"] is True and doc["helloOk"] is True and doc["maxWireVersion"] >= 9


async def test_op_query_for_other_commands_is_refused(mongo_server: MongoStandIn) -> None:
    """Like mongod 6+, OP_QUERY carries only hello; anything else gets code 352."""
    async with RawConnection.open(mongo_server) as conn:
        await conn.send(_op_query({"find": "c"}, ns="db.$cmd"))
        _, op_code, payload = await conn.reply()
    assert op_code == 1 and bson.decode(payload[20:])["code"] == 352


async def test_op_msg_without_db_is_an_error_reply(mongo_server: MongoStandIn) -> None:
    """A command without $db gets mongod's 40571 and the connection stays usable."""
    async with RawConnection.open(mongo_server) as conn:
        assert (await conn.command({"ping": 1}))["code"] == 40571
        assert (await conn.command({"ping": 1, "$db": "admin"}))["ok"] == 1.0


async def test_more_to_come_request_gets_no_reply(mongo_server: MongoStandIn) -> None:
    """A moreToCome request is executed but not answered; the next one is."""
    async with RawConnection.open(mongo_server) as conn:
        await conn.send(op_msg({"ping": 1, "$db": "admin"}, request_id=1, flags=1 << 1))
        reply = await conn.command({"buildInfo": 1, "$db": "admin"}, request_id=2)
    assert reply["version"].startswith("7.")
    assert mongo_server.stats.commands["ping"] == 1


BAD_FRAMES = {
    "garbage": b"\xde\xad\xbe\xef" * 8,
    "negative length": struct.pack("<iiii", -5, 1, 0, OP_MSG),
    "length too small": struct.pack("<iiii", 16, 1, 0, OP_MSG),
    "oversized": struct.pack("<iiii", 48_000_001, 1, 0, OP_MSG),
    "unknown opcode": struct.pack("<iiii", 21, 1, 0, 2002) + b"\x00" * 5,
    "compressed": struct.pack("<iiii", 25, 1, 0, 2012) + b"\x00" * 9,
    "bad bson": struct.pack("<iiii", 26, 1, 0, OP_MSG) + b"\x00" * 5 + b"\x05\x00\x00\x00\x01",
}


@pytest.mark.parametrize("frame", BAD_FRAMES.values(), ids=BAD_FRAMES.keys())
async def test_bad_frame_closes_only_that_connection(
    mongo_server: MongoStandIn, frame: bytes
) -> None:
    """A bad frame closes its connection; the server and other connections carry on."""
    async with RawConnection.open(mongo_server) as bystander:
        assert (await bystander.command({"ping": 1, "$db": "admin"}))["ok"] == 1.0
        async with RawConnection.open(mongo_server) as conn:
            await conn.send(frame)
            assert await conn.closed_by_server()
        assert (await bystander.command({"ping": 1, "$db": "admin"}))["ok"] == 1.0
    async with RawConnection.open(mongo_server) as fresh:
        assert (await fresh.command({"hello": 1, "$db": "admin"}))["isWritablePrimary"] is True
    assert mongo_server.stats.protocol_errors == 1


async def test_frame_cut_short_is_dropped_quietly(mongo_server: MongoStandIn) -> None:
    """A client that vanishes mid-frame costs nothing but its connection."""
    async with RawConnection.open(mongo_server) as conn:
        await conn.send(op_msg({"ping": 1, "$db": "admin"})[:-3])
    async with RawConnection.open(mongo_server) as fresh:
        assert (await fresh.command({"ping": 1, "$db": "admin"}))["ok"] == 1.0
