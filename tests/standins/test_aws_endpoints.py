"""IMDSv2 and container endpoints at the HTTP level: protocol rules, rotation, faults, bad input."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest

from pool.standins.authority import CredentialAuthority
from pool.standins.aws import AwsStandIns
from pool.standins.container import ContainerStandIn
from pool.standins.faults import Fault
from pool.standins.imds import ImdsStandIn

TTL = "X-aws-ec2-metadata-token-ttl-seconds"
TOKEN = "X-aws-ec2-metadata-token"
CREDS = "/latest/meta-data/iam/security-credentials/"


async def imds_token(http: aiohttp.ClientSession, base: str, ttl: str = "21600") -> str:
    async with http.put(base + "/latest/api/token", headers={TTL: ttl}) as resp:
        assert resp.status == 200
        return await resp.text()


async def get(
    http: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None
) -> tuple[int, str]:
    async with http.get(url, headers=headers) as resp:
        return resp.status, await resp.text()


async def raw_exchange(url: str, data: bytes) -> bytes:
    """Send raw bytes to the server and return whatever it answers before closing."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    writer.write(data)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(65536), 10)
    writer.close()
    await writer.wait_closed()
    return answer


# -- IMDSv2 -------------------------------------------------------------------


async def test_imds_v2_flow_serves_role_document(
    aws: AwsStandIns, http: aiohttp.ClientSession
) -> None:
    """Token, role name, then the JSON document with every field IMDS sends."""
    token = await imds_token(http, aws.imds_url)
    status, role = await get(http, aws.imds_url + CREDS, {TOKEN: token})
    assert (status, role) == (200, "standin-app")
    status, text = await get(http, aws.imds_url + CREDS + role, {TOKEN: token})
    doc = json.loads(text)
    assert status == 200
    assert list(doc) == [
        "Code",
        "LastUpdated",
        "Type",
        "AccessKeyId",
        "SecretAccessKey",
        "Token",
        "Expiration",
    ]
    assert doc["Code"] == "Success" and doc["Type"] == "AWS-HMAC"
    assert doc["Expiration"].endswith("Z") and len(doc["Expiration"]) == 20
    assert aws.authority.lookup(doc["AccessKeyId"]) is not None


@pytest.mark.parametrize("ttl", ["0", "21601", "abc", "-5", "1.5", ""])
async def test_imds_token_ttl_out_of_range_is_400(
    aws: AwsStandIns, http: aiohttp.ClientSession, ttl: str
) -> None:
    """The token TTL header must be an integer 1..21600."""
    async with http.put(aws.imds_url + "/latest/api/token", headers={TTL: ttl}) as resp:
        assert resp.status == 400


async def test_imds_token_without_ttl_and_forwarded_are_refused(
    aws: AwsStandIns, http: aiohttp.ClientSession
) -> None:
    """No TTL header is 400; a forwarded request (X-Forwarded-For) is 403, as on EC2."""
    async with http.put(aws.imds_url + "/latest/api/token") as resp:
        assert resp.status == 400
    headers = {TTL: "60", "X-Forwarded-For": "10.0.0.1"}
    async with http.put(aws.imds_url + "/latest/api/token", headers=headers) as resp:
        assert resp.status == 403


async def test_imds_requires_valid_unexpired_token(
    aws: AwsStandIns, http: aiohttp.ClientSession, clock: Any
) -> None:
    """Without a token (IMDSv1), with a made-up one, or with an expired one: 401."""
    assert (await get(http, aws.imds_url + CREDS))[0] == 401
    assert (await get(http, aws.imds_url + CREDS, {TOKEN: "made-up"}))[0] == 401
    token = await imds_token(http, aws.imds_url, ttl="5")
    assert (await get(http, aws.imds_url + CREDS, {TOKEN: token}))[0] == 200
    clock.advance(6)
    assert (await get(http, aws.imds_url + CREDS, {TOKEN: token}))[0] == 401


async def test_imdsv1_only_when_enabled(
    authority: CredentialAuthority, http: aiohttp.ClientSession
) -> None:
    """With imdsv1=True a tokenless GET is served; a bad token is still 401."""
    async with ImdsStandIn(authority, imdsv1=True) as imds:
        status, role = await get(http, imds.url + CREDS)
        assert (status, role) == (200, "standin-app")
        assert (await get(http, imds.url + CREDS, {TOKEN: "bad"}))[0] == 401


async def test_imds_unknown_role_and_path_are_404(
    aws: AwsStandIns, http: aiohttp.ClientSession
) -> None:
    """Asking for another role's credentials, or an unknown path, is 404."""
    token = await imds_token(http, aws.imds_url)
    assert (await get(http, aws.imds_url + CREDS + "other-role", {TOKEN: token}))[0] == 404
    assert (await get(http, aws.imds_url + "/latest/nothing", {TOKEN: token}))[0] == 404


async def test_imds_serves_region(aws: AwsStandIns, http: aiohttp.ClientSession) -> None:
    """Region, availability zone and the identity document, for SDKs that look them up."""
    token = await imds_token(http, aws.imds_url)
    base = aws.imds_url + "/latest/meta-data/placement/"
    assert await get(http, base + "region", {TOKEN: token}) == (200, "us-east-1")
    assert await get(http, base + "availability-zone/", {TOKEN: token}) == (200, "us-east-1a")
    _, doc = await get(
        http, aws.imds_url + "/latest/dynamic/instance-identity/document", {TOKEN: token}
    )
    assert json.loads(doc)["accountId"] == "123456789012"


async def test_imds_rotates_at_margin(
    authority: CredentialAuthority, clock: Any, http: aiohttp.ClientSession
) -> None:
    """IMDS serves the same credentials until the margin before expiry, then new ones."""
    clock.now = float(int(clock.now))
    async with AwsStandIns(authority, lifetime=6) as aws:  # margin 2 s
        token = await imds_token(http, aws.imds_url)
        url = aws.imds_url + CREDS + "standin-app"
        first = json.loads((await get(http, url, {TOKEN: token}))[1])
        clock.advance(3.5)
        assert json.loads((await get(http, url, {TOKEN: token}))[1]) == first
        clock.advance(1)
        second = json.loads((await get(http, url, {TOKEN: token}))[1])
        assert second["AccessKeyId"] != first["AccessKeyId"]
        assert second["LastUpdated"] > first["LastUpdated"]


# -- container endpoints ------------------------------------------------------


async def test_ecs_endpoint_serves_container_json(
    aws: AwsStandIns, http: aiohttp.ClientSession
) -> None:
    """With the right Authorization the ECS endpoint answers the container JSON."""
    status, text = await get(http, aws.ecs_full_uri, {"Authorization": aws.ecs_auth_token})
    doc = json.loads(text)
    assert status == 200
    assert set(doc) == {"AccessKeyId", "SecretAccessKey", "Token", "Expiration", "RoleArn"}
    assert doc["RoleArn"] == aws.role_arn


async def test_pod_identity_adds_account_id(aws: AwsStandIns, http: aiohttp.ClientSession) -> None:
    """The Pod Identity flavour also returns AccountId, at /v1/credentials."""
    assert aws.pod_identity_full_uri.endswith("/v1/credentials")
    headers = {"Authorization": aws.pod_identity_token}
    status, text = await get(http, aws.pod_identity_full_uri, headers)
    assert status == 200 and json.loads(text)["AccountId"] == "123456789012"


async def test_container_auth_missing_401_wrong_403(
    aws: AwsStandIns, http: aiohttp.ClientSession
) -> None:
    """No Authorization is 401, a wrong one 403; neither echoes the expected token."""
    status, text = await get(http, aws.ecs_full_uri)
    assert status == 401
    status, text = await get(http, aws.ecs_full_uri, {"Authorization": "wrong"})
    assert status == 403 and aws.ecs_auth_token not in text
    assert aws.ecs_auth_token not in repr(aws) and aws.ecs_auth_token not in repr(aws.ecs)


async def test_container_wrong_path_is_404(aws: AwsStandIns, http: aiohttp.ClientSession) -> None:
    """Only the configured credentials path answers."""
    headers = {"Authorization": aws.ecs_auth_token}
    assert (await get(http, aws.ecs.url + "/v2/credentials/other", headers))[0] == 404


async def test_container_without_token_requirement(
    authority: CredentialAuthority, http: aiohttp.ClientSession
) -> None:
    """An endpoint configured without a token serves anyone, like the ECS relative URI."""
    async with ContainerStandIn(authority, path="/creds") as ecs:
        assert (await get(http, ecs.full_uri))[0] == 200


async def test_container_rotates_at_margin(
    authority: CredentialAuthority, clock: Any, http: aiohttp.ClientSession
) -> None:
    """The container endpoint serves the same credentials until the margin, then new ones."""
    clock.now = float(int(clock.now))
    async with AwsStandIns(authority, lifetime=6) as aws:
        headers = {"Authorization": aws.ecs_auth_token}
        first = json.loads((await get(http, aws.ecs_full_uri, headers))[1])
        clock.advance(3.5)
        assert json.loads((await get(http, aws.ecs_full_uri, headers))[1]) == first
        clock.advance(1)
        second = json.loads((await get(http, aws.ecs_full_uri, headers))[1])
        assert second["AccessKeyId"] != first["AccessKeyId"]


# -- faults -------------------------------------------------------------------


async def test_fault_latency_delays_answer(aws: AwsStandIns, http: aiohttp.ClientSession) -> None:
    """A latency fault answers normally, but no sooner than the delay."""
    aws.faults.add("ecs:latency=0.2x1")
    loop = asyncio.get_running_loop()
    started = loop.time()
    status, _ = await get(http, aws.ecs_full_uri, {"Authorization": aws.ecs_auth_token})
    assert status == 200 and loop.time() - started >= 0.2


@pytest.mark.parametrize(
    ("spec", "status"),
    [("ecs:error=503", 503), ("ecs:credentials:throttle", 429), ("ecs:error=500x1", 500)],
)
async def test_fault_error_and_throttle(
    aws: AwsStandIns, http: aiohttp.ClientSession, spec: str, status: int
) -> None:
    """Error faults answer their status, throttling answers 429; counted per operation."""
    aws.faults.add(spec)
    headers = {"Authorization": aws.ecs_auth_token}
    assert (await get(http, aws.ecs_full_uri, headers))[0] == status
    assert aws.ecs.requests["credentials"] == 1


async def test_fault_times_then_normal(aws: AwsStandIns, http: aiohttp.ClientSession) -> None:
    """A fault limited to N times fires N times, then requests succeed again."""
    aws.faults.add("imds:token:error=500x2")
    for expected in (500, 500, 200):
        async with http.put(aws.imds_url + "/latest/api/token", headers={TTL: "60"}) as resp:
            assert resp.status == expected
    assert aws.imds.requests["token"] == 3


async def test_fault_imds_throttle_is_429(aws: AwsStandIns, http: aiohttp.ClientSession) -> None:
    """IMDS under a throttle fault answers 429, as it does under load."""
    aws.faults.add(Fault("imds", "throttle", times=1))
    async with http.put(aws.imds_url + "/latest/api/token", headers={TTL: "60"}) as resp:
        assert resp.status == 429


async def test_fault_drop_closes_connection(aws: AwsStandIns, http: aiohttp.ClientSession) -> None:
    """A drop fault closes the connection without an answer; the server keeps serving."""
    aws.faults.add("eks_pod_identity:dropx2")  # x2: aiohttp retries an idempotent GET once
    headers = {"Authorization": aws.pod_identity_token}
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await get(http, aws.pod_identity_full_uri, headers)
    assert aws.pod_identity.requests["credentials"] == 2
    assert (await get(http, aws.pod_identity_full_uri, headers))[0] == 200


async def test_fault_hang_never_answers_until_close(
    authority: CredentialAuthority, http: aiohttp.ClientSession
) -> None:
    """A hang fault never answers; the client times out and aclose() still returns promptly."""
    aws = AwsStandIns(authority)
    await aws.start()
    try:
        aws.faults.add("ecs:hang")
        headers = {"Authorization": aws.ecs_auth_token}
        timeout = aiohttp.ClientTimeout(total=0.3)
        with pytest.raises(TimeoutError):
            async with http.get(aws.ecs_full_uri, headers=headers, timeout=timeout):
                pass
        # A second request hangs too, and is released by aclose().
        pending = asyncio.ensure_future(get(http, aws.ecs_full_uri, headers))
        while aws.ecs.requests["credentials"] < 2:  # until the server holds it
            await asyncio.sleep(0.01)
    finally:
        await aws.aclose()
    with pytest.raises(aiohttp.ClientError):
        await pending


# -- malformed input ----------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"GARBAGE\r\n\r\n",
        b"\x00\x01\x02\xff" * 64 + b"\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
        b"PUT /latest/api/token HTTP/1.1\r\nHost: x\r\n" + TTL.encode() + b": 6\r0\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 20000 + b"\r\n\r\n",
    ],
)
async def test_malformed_http_gets_error_not_crash(
    aws: AwsStandIns, http: aiohttp.ClientSession, data: bytes
) -> None:
    """Garbage, bad headers, CR inside a header and huge headers get a 4xx; the server lives on."""
    answer = await raw_exchange(aws.imds_url, data)
    assert re.match(rb"HTTP/1\.[01] 4\d\d ", answer), answer[:80]
    await imds_token(http, aws.imds_url)


async def test_oversized_body_is_413(aws: AwsStandIns, http: aiohttp.ClientSession) -> None:
    """A body over the stand-ins' limit is refused with 413."""
    async with http.post(aws.sts_url + "/", data=b"Action=" + b"x" * 200_000) as resp:
        assert resp.status == 413
    assert (await get(http, aws.ecs_full_uri, {"Authorization": aws.ecs_auth_token}))[0] == 200


async def test_logs_never_carry_secrets(aws: AwsStandIns, http: aiohttp.ClientSession) -> None:
    """Serving and rejecting credentials logs key hints only: no secret, token or auth token."""
    from tests.logcapture import capture_logs

    with capture_logs() as logs:
        headers = {"Authorization": aws.ecs_auth_token}
        _, text = await get(http, aws.ecs_full_uri, headers)
        await get(http, aws.ecs_full_uri, {"Authorization": "wrong"})
        token = await imds_token(http, aws.imds_url)
        await get(http, aws.imds_url + CREDS + "standin-app", {TOKEN: token})
        form = {
            "Action": "AssumeRoleWithWebIdentity",
            "RoleArn": aws.role_arn,
            "RoleSessionName": "s1",
            "WebIdentityToken": aws.web_identity_token,
        }
        async with http.post(aws.sts_url + "/", data=form) as resp:
            sts_answer = await resp.text()
        aws.faults.add("ecs:throttlex1")
        await get(http, aws.ecs_full_uri, headers)
    doc = json.loads(text)
    secrets = [doc["SecretAccessKey"], doc["Token"], aws.ecs_auth_token, aws.web_identity_token]
    secrets += re.findall(r"<(?:SecretAccessKey|SessionToken)>([^<]+)<", sts_answer)
    assert len(secrets) == 6 and logs
    logged = repr(logs)
    assert not [s for s in secrets if s in logged]
