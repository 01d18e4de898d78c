"""MONGODB-AWS against the stand-in with PyMongo (sync and async) and Motor, unmodified."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import bson
import pymongo_auth_aws
import pytest
from bson.binary import Binary
from motor.motor_asyncio import AsyncIOMotorClient
from pymongo import AsyncMongoClient, MongoClient
from pymongo.errors import OperationFailure

from pool.standins.authority import CredentialAuthority, IssuedCredentials
from pool.standins.mongo import MongoStandIn, region_for
from tests.logcapture import capture_logs
from tests.standins.mongo_fixtures import *  # noqa: F403
from tests.standins.mongo_fixtures import FakeClock, RawConnection, async_client, aws_options

Options = dict[str, Any]


async def _with_async(server: MongoStandIn, opts: Options) -> Any:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(server.uri, **opts)
    try:
        await client.db.things.insert_one({"k": 1})
        return await client.db.things.find_one({"k": 1}, {"_id": 0})
    finally:
        await client.close()


async def _with_sync(server: MongoStandIn, opts: Options) -> Any:
    def work() -> Any:
        client: MongoClient[dict[str, Any]] = MongoClient(server.uri, **opts)
        try:
            client.db.things.insert_one({"k": 1})
            return client.db.things.find_one({"k": 1}, {"_id": 0})
        finally:
            client.close()

    return await anyio.to_thread.run_sync(work)


async def _with_motor(server: MongoStandIn, opts: Options) -> Any:
    client = AsyncIOMotorClient(server.uri, **opts)
    try:
        await client.db.things.insert_one({"k": 1})
        return await client.db.things.find_one({"k": 1}, {"_id": 0})
    finally:
        # Motor's close() is synchronous and sends endSessions: on this loop it would
        # block the very server that has to answer it, so close from a thread.
        await anyio.to_thread.run_sync(client.close)


DRIVERS: dict[str, Callable[[MongoStandIn, Options], Awaitable[Any]]] = {
    "AsyncMongoClient": _with_async,
    "MongoClient": _with_sync,
    "Motor": _with_motor,
}


@pytest.fixture(params=list(DRIVERS))
def driver(request: pytest.FixtureRequest) -> Callable[[MongoStandIn, Options], Awaitable[Any]]:
    return DRIVERS[request.param]


async def test_explicit_credentials_authenticate_and_run_crud(
    driver: Callable[[MongoStandIn, Options], Awaitable[Any]],
    mongo_server: MongoStandIn,
    mongo_authority: CredentialAuthority,
) -> None:
    """Each driver authenticates with explicit temporary credentials and reads its write."""
    creds = mongo_authority.mint()
    assert await driver(mongo_server, aws_options(creds)) == {"k": 1}
    assert mongo_server.stats.auth_successes >= 1
    assert mongo_server.stats.sts_calls == mongo_server.stats.auth_successes
    assert not mongo_server.stats.auth_failures


def _bad_credentials(
    case: str, authority: CredentialAuthority, clock: FakeClock, server: MongoStandIn
) -> tuple[Options, str]:
    """Client options for one kind of bad credentials and the reason the server logs."""
    creds = authority.mint(lifetime=1 if case == "expired" else None)
    if case == "wrong secret":
        return aws_options(creds, secret="x" * 40), "sts:SignatureDoesNotMatch"
    if case == "wrong token":
        return aws_options(creds, token="IQoJb3JpZ2luX2VjEbogus"), "sts:InvalidClientTokenId"
    if case == "missing token":
        return aws_options(creds, token=None), "sts:InvalidClientTokenId"
    if case == "unknown key":
        authority.revoke(creds.access_key_id)
        return aws_options(creds), "sts:InvalidClientTokenId"
    if case == "expired":
        clock.advance(5)
        return aws_options(creds), "sts:ExpiredToken"
    assert case == "unmapped role"
    server.users.clear()
    return aws_options(creds), "unmapped_role"


@pytest.mark.parametrize(
    "case",
    ["wrong secret", "wrong token", "missing token", "unknown key", "expired", "unmapped role"],
)
async def test_bad_credentials_fail_with_code_18(
    case: str,
    driver: Callable[[MongoStandIn, Options], Awaitable[Any]],
    mongo_server: MongoStandIn,
    mongo_authority: CredentialAuthority,
    mongo_clock: FakeClock,
) -> None:
    """Every kind of bad credentials fails exactly as mongod answers: code 18, generic text."""
    opts, reason = _bad_credentials(case, mongo_authority, mongo_clock, mongo_server)
    with pytest.raises(OperationFailure) as info:
        await driver(mongo_server, opts)
    assert info.value.code == 18
    assert info.value.details is not None
    assert info.value.details["errmsg"] == "Authentication failed."
    assert info.value.details["codeName"] == "AuthenticationFailed"
    assert mongo_server.stats.auth_failures == {reason: mongo_server.stats.auth_failures[reason]}
    assert mongo_server.stats.auth_successes == 0


async def test_commands_before_authentication_fail_with_code_13(
    mongo_server: MongoStandIn,
) -> None:
    """Without credentials the handshake works but data commands are Unauthorized."""
    async with async_client(mongo_server, None) as client:
        assert (await client.admin.command("ping"))["ok"] == 1.0
        with pytest.raises(OperationFailure) as info:
            await client.db.things.find_one()
    assert info.value.code == 13
    assert info.value.details is not None
    assert info.value.details["errmsg"] == "command find requires authentication"


async def test_connection_status_names_the_mapped_user(
    mongo_server: MongoStandIn, mongo_authority: CredentialAuthority
) -> None:
    """The IAM role maps to its database user, visible in connectionStatus."""
    async with async_client(mongo_server, mongo_authority.mint()) as client:
        status = await client.admin.command("connectionStatus")
    assert status["authInfo"]["authenticatedUsers"] == [{"user": "app", "db": "$external"}]


async def test_long_term_key_maps_by_user_arn(mongo_authority: CredentialAuthority) -> None:
    """An IAM user's long-term key (no session token) authenticates via its user ARN."""
    key = mongo_authority.add_long_term_key("batch")
    async with (
        MongoStandIn(mongo_authority, users={key.arn: "batch"}) as server,
        async_client(server, key) as client,
    ):
        status = await client.admin.command("connectionStatus")
    assert status["authInfo"]["authenticatedUsers"][0]["user"] == "batch"


@pytest.mark.parametrize("sts_host", ["sts.eu-west-3.amazonaws.com", "localhost"])
async def test_regional_sts_host_is_signed_and_verified_for_its_region(
    mongo_authority: CredentialAuthority, sts_host: str
) -> None:
    """Clients sign for the region of the host the server names, and the server checks it."""
    async with (
        MongoStandIn(mongo_authority, sts_host=sts_host) as server,
        async_client(server, mongo_authority.mint()) as client,
    ):
        assert (await client.admin.command("connectionStatus"))["ok"] == 1.0
    assert region_for(sts_host) == ("eu-west-3" if "." in sts_host else "us-east-1")


async def test_reject_auth_fails_until_lifted(
    mongo_server: MongoStandIn, mongo_authority: CredentialAuthority
) -> None:
    """reject_auth(True) makes authentication fail with 18; lifting it restores service."""
    creds = mongo_authority.mint()
    mongo_server.reject_auth(True)
    with pytest.raises(OperationFailure) as info:
        await _with_async(mongo_server, aws_options(creds))
    assert info.value.code == 18
    mongo_server.reject_auth(False)
    assert await _with_async(mongo_server, aws_options(creds)) == {"k": 1}
    assert mongo_server.stats.auth_failures["rejected"] >= 1


async def test_reject_auth_can_spare_listed_keys(
    mongo_server: MongoStandIn, mongo_authority: CredentialAuthority
) -> None:
    """reject_auth(True, except_keys=...) refuses only other credentials, as for a new role."""
    old, new = mongo_authority.mint(), mongo_authority.mint()
    mongo_server.reject_auth(True, except_keys={old.access_key_id})
    assert await _with_async(mongo_server, aws_options(old)) == {"k": 1}
    with pytest.raises(OperationFailure) as info:
        await _with_async(mongo_server, aws_options(new))
    assert info.value.code == 18
    mongo_server.reject_auth(False)
    assert await _with_async(mongo_server, aws_options(new)) == {"k": 1}


async def test_logs_carry_the_reason_but_never_a_secret(
    mongo_server: MongoStandIn, mongo_authority: CredentialAuthority
) -> None:
    """Auth log lines name the reason and a key hint, never the secret key or session token."""
    creds = mongo_authority.mint()
    assert creds.session_token is not None
    with capture_logs() as logs:
        await _with_async(mongo_server, aws_options(creds))
        with pytest.raises(OperationFailure):
            await _with_async(mongo_server, aws_options(creds, secret="y" * 40))
    failed = [e for e in logs if e["event"] == "mongo.auth_failed"]
    assert failed and failed[0]["reason"] == "sts:SignatureDoesNotMatch"
    assert any(e["event"] == "mongo.auth_succeeded" for e in logs)
    text = repr(logs) + repr(mongo_server.stats.snapshot())
    assert creds.secret_access_key not in text and creds.session_token not in text
    assert creds.session_token[:40] not in text


# -- the SASL conversation by hand ------------------------------------------------


class _Sasl(pymongo_auth_aws.AwsSaslContext):  # type: ignore[misc]
    """pymongo-auth-aws's client context with PyMongo's BSON injected, as PyMongo does it."""

    def binary_type(self) -> type[Binary]:
        return Binary

    def bson_encode(self, doc: Any) -> bytes:
        return bson.encode(doc)

    def bson_decode(self, data: Any) -> Any:
        return bson.decode(data)


def _sasl_context(creds: IssuedCredentials) -> _Sasl:
    return _Sasl(
        pymongo_auth_aws.AwsCredential(
            creds.access_key_id, creds.secret_access_key, creds.session_token
        )
    )


def _start(payload: Any, mechanism: str = "MONGODB-AWS") -> dict[str, Any]:
    return {"saslStart": 1, "mechanism": mechanism, "payload": payload, "$db": "$external"}


def _continue(payload: Any) -> dict[str, Any]:
    return {"saslContinue": 1, "conversationId": 1, "payload": payload, "$db": "$external"}


async def test_raw_conversation_follows_the_mongod_shape(
    mongo_server: MongoStandIn, mongo_authority: CredentialAuthority
) -> None:
    """Challenge = client nonce + 32 bytes and the STS host; success ends with done=true."""
    ctx = _sasl_context(mongo_authority.mint())
    first = ctx.step(None)
    async with RawConnection.open(mongo_server) as conn:
        reply = await conn.command(_start(first))
        challenge = bson.decode(reply["payload"])
        assert (reply["conversationId"], reply["done"]) == (1, False)
        assert challenge["h"] == "sts.amazonaws.com"
        assert len(challenge["s"]) == 64
        assert challenge["s"][:32] == bson.decode(first)["r"]
        final = await conn.command(_continue(ctx.step(reply["payload"])))
        assert (final["ok"], final["done"]) == (1.0, True)
        assert (await conn.command({"find": "c", "$db": "db"}))["ok"] == 1.0


async def test_replayed_signature_fails_against_a_fresh_nonce(
    mongo_server: MongoStandIn, mongo_authority: CredentialAuthority
) -> None:
    """The server signs over its own new nonce, so a captured payload cannot be replayed."""
    ctx = _sasl_context(mongo_authority.mint())
    first = ctx.step(None)
    async with RawConnection.open(mongo_server) as conn:
        reply = await conn.command(_start(first))
        final = ctx.step(reply["payload"])
        assert (await conn.command(_continue(final)))["ok"] == 1.0
    async with RawConnection.open(mongo_server) as attacker:
        await attacker.command(_start(first))
        assert (await attacker.command(_continue(final)))["code"] == 18
    assert mongo_server.stats.auth_failures["sts:SignatureDoesNotMatch"] == 1


def _payload(**fields: Any) -> bytes:
    return bson.encode(fields)


BAD_STARTS = {
    "short nonce": _payload(r=Binary(b"x" * 31), p=110),
    "long nonce": _payload(r=Binary(b"x" * 33), p=110),
    "nonce not binary": _payload(r="x" * 32, p=110),
    "bad cb flag": _payload(r=Binary(b"x" * 32), p=112),
    "bool cb flag": _payload(r=Binary(b"x" * 32), p=True),
    "double cb flag n": _payload(r=Binary(b"x" * 32), p=110.0),
    "double cb flag y": _payload(r=Binary(b"x" * 32), p=121.0),
    "no cb flag": _payload(r=Binary(b"x" * 32)),
    "not bson": b"\x07\x00\x00\x00garbage",
    "string payload": "hello",
}


@pytest.mark.parametrize("payload", BAD_STARTS.values(), ids=BAD_STARTS.keys())
async def test_bad_sasl_start_payload_fails_with_18(
    mongo_server: MongoStandIn, payload: Any
) -> None:
    """saslStart rejects nonces other than 32 bytes, flags other than n/y, and junk."""
    async with RawConnection.open(mongo_server) as conn:
        reply = await conn.command(_start(payload))
        assert reply == {
            "ok": 0.0,
            "errmsg": "Authentication failed.",
            "code": 18,
            "codeName": "AuthenticationFailed",
        }
        assert (await conn.command({"ping": 1, "$db": "admin"}))["ok"] == 1.0
    assert mongo_server.stats.auth_failures["bad_payload"] == 1


async def test_a_double_cb_flag_is_logged_with_its_reason(mongo_server: MongoStandIn) -> None:
    """A gs2 flag sent as a BSON double: code 18, counted, the reason in the server's log."""
    with capture_logs() as logs:
        async with RawConnection.open(mongo_server) as conn:
            reply = await conn.command(_start(_payload(r=Binary(b"x" * 32), p=110.0)))
    assert reply["code"] == 18
    (failed,) = [e for e in logs if e["event"] == "mongo.auth_failed"]
    assert failed["reason"] == "bad_payload" and "110 or 121" in failed["detail"]


async def test_sasl_continue_checks_signed_headers_and_sequence(
    mongo_server: MongoStandIn, mongo_authority: CredentialAuthority
) -> None:
    """saslContinue out of sequence, or with the nonce header unsigned, fails with 18."""
    unsigned = "AWS4-HMAC-SHA256 Credential=ASIAXXXXXXXXXXXXXXXX/20250101/us-east-1/sts/"
    unsigned += "aws4_request, SignedHeaders=content-length;content-type;host;x-amz-date, "
    unsigned += "Signature=" + "0" * 64
    bad_final = _payload(a=unsigned, d="20250101T000000Z")
    async with RawConnection.open(mongo_server) as conn:
        assert (await conn.command(_continue(bad_final)))["code"] == 18
        await conn.command(_start(_sasl_context(mongo_authority.mint()).step(None)))
        assert (await conn.command(_continue(bad_final)))["code"] == 18
        assert (await conn.command(_continue(bad_final)))["code"] == 18  # nonce is single-use
    failures = mongo_server.stats.auth_failures
    assert failures == {"no_conversation": 2, "unsigned_headers": 1}
    assert mongo_server.stats.sts_calls == 0


async def test_other_mechanisms_are_unavailable(mongo_server: MongoStandIn) -> None:
    """SCRAM and friends are answered as mongod answers a disabled mechanism (334)."""
    async with RawConnection.open(mongo_server) as conn:
        reply = await conn.command(_start(b"n,,n=user,r=abc", mechanism="SCRAM-SHA-256"))
    assert reply["code"] == 334
