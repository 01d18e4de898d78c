"""InstanceMetadataSource (EC2 IMDSv2) against the IMDS stand-in."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp import web

from pool import ConfigurationError, CredentialFetchError
from pool.sources import InstanceMetadataSource
from pool.standins.aws import AwsStandIns
from pool.standins.faults import FaultInjector

FAST = {"timeout": 0.3, "connect_timeout": 0.3, "backoff": 0.0}


class Clock:
    """A settable monotonic clock for the session-token lifetime."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def imdsv1_aws() -> AsyncIterator[AwsStandIns]:
    async with AwsStandIns(imdsv1=True) as group:
        yield group


async def test_imdsv2_flow_returns_role_credentials(aws: AwsStandIns) -> None:
    """Token PUT, role discovery and credentials GET return the instance role's credentials."""
    async with InstanceMetadataSource.from_env(aws.env_for("ec2")) as source:
        creds = await source.fetch()
    served = aws.imds.vendor.current()
    assert source.name == "ec2" and creds.source == "ec2"
    assert (creds.access_key_id, creds.secret_access_key, creds.session_token) == (
        served.access_key_id,
        served.secret_access_key,
        served.session_token,
    )
    assert creds.expiration == served.expiration
    assert aws.imds.requests == {"token": 1, "roles": 1, "credentials": 1}


async def test_session_token_and_connection_are_reused(aws: AwsStandIns) -> None:
    """Later fetches reuse the IMDS session token and the one keep-alive connection."""
    async with InstanceMetadataSource.from_env(aws.env_for("ec2")) as source:
        for _ in range(4):
            await source.fetch()
        assert source.http.connections_opened == 1
    assert aws.imds.tokens_issued == 1 and aws.imds.requests["token"] == 1
    assert aws.imds.requests["credentials"] == 4


async def test_token_renewed_shortly_before_its_ttl(aws: AwsStandIns) -> None:
    """The session token is kept until min(60 s, ttl/10) before its TTL, then renewed."""
    clock = Clock()
    env = aws.env_for("ec2")
    async with InstanceMetadataSource.from_env(env, token_ttl=600, clock=clock) as source:
        await source.fetch()
        clock.now += 600 - 60 - 1
        await source.fetch()
        assert aws.imds.tokens_issued == 1
        clock.now += 2
        await source.fetch()
    assert aws.imds.tokens_issued == 2


async def test_401_renews_the_token_once(aws: AwsStandIns) -> None:
    """When IMDS forgets the token (401), a new one is fetched and the fetch succeeds."""
    async with InstanceMetadataSource.from_env(aws.env_for("ec2")) as source:
        await source.fetch()
        aws.imds._tokens.clear()  # as after an IMDS restart
        creds = await source.fetch()
    assert creds.source == "ec2" and aws.imds.tokens_issued == 2


async def test_role_name_skips_discovery(aws: AwsStandIns) -> None:
    """An explicit role_name goes straight to the credentials document."""
    env = aws.env_for("ec2")
    async with InstanceMetadataSource.from_env(env, role_name=aws.imds.role_name) as source:
        await source.fetch()
    assert aws.imds.requests["roles"] == 0


async def test_token_put_timeout_explains_hop_limit(
    aws: AwsStandIns, faults: FaultInjector
) -> None:
    """A token PUT that hangs fails retryable with the container hop-limit symptom and fix."""
    faults.add("imds:token:hang")
    async with InstanceMetadataSource.from_env(aws.env_for("ec2"), attempts=1, **FAST) as source:
        with pytest.raises(CredentialFetchError) as info:
            await source.fetch()
    message = str(info.value)
    assert info.value.retryable is True and info.value.code == "TokenTimeout"
    assert "hop" in message and "--http-put-response-hop-limit 2" in message
    assert "timed out" in message and "/latest/api/token" in message


async def test_no_imdsv1_fallback_unless_asked(
    aws: AwsStandIns, imdsv1_aws: AwsStandIns, faults: FaultInjector
) -> None:
    """A refused token PUT fails (non-retryable) by default; with allow_imdsv1 v1 is used."""
    faults.add("imds:token:error=403")
    async with InstanceMetadataSource.from_env(aws.env_for("ec2"), **FAST) as source:
        with pytest.raises(CredentialFetchError, match="allow_imdsv1") as info:
            await source.fetch()
    assert info.value.retryable is False and info.value.status == 403
    assert aws.imds.requests["roles"] == 0

    imdsv1_aws.faults.add("imds:token:error=405")
    env = imdsv1_aws.env_for("ec2")
    async with InstanceMetadataSource.from_env(env, allow_imdsv1=True, **FAST) as source:
        creds = await source.fetch()
    assert creds.access_key_id == imdsv1_aws.imds.vendor.current().access_key_id
    assert imdsv1_aws.imds.tokens_issued == 0


async def test_5xx_retried_and_throttling_bounded(aws: AwsStandIns, faults: FaultInjector) -> None:
    """One 500 is retried to success; persistent 429 stops after `attempts`, retryable."""
    faults.add("imds:credentials:error=500x1")
    async with InstanceMetadataSource.from_env(aws.env_for("ec2"), **FAST) as source:
        assert (await source.fetch()).source == "ec2"
        faults.add("imds:credentials:throttle")
        before = aws.imds.requests["credentials"]
        with pytest.raises(CredentialFetchError, match="429") as info:
            await source.fetch()
    assert info.value.retryable is True and info.value.status == 429
    assert aws.imds.requests["credentials"] - before == 3


async def test_hang_on_credentials_times_out(aws: AwsStandIns, faults: FaultInjector) -> None:
    """A credentials GET that never answers fails after the timeout as retryable."""
    faults.add("imds:credentials:hang")
    async with InstanceMetadataSource.from_env(aws.env_for("ec2"), attempts=1, **FAST) as source:
        with pytest.raises(CredentialFetchError, match="timed out") as info:
            await source.fetch()
    assert info.value.retryable is True


Answer = tuple[int, str]


def _mini_imds(roles: Answer, creds: Answer) -> Callable[[web.Request], Awaitable[web.Response]]:
    """A minimal IMDS: any token PUT succeeds; fixed role-list and credentials answers."""

    async def handler(request: web.Request) -> web.Response:
        if request.method == "PUT":
            return web.Response(text="session-token-recognisable")
        status, body = roles if request.path.endswith("/security-credentials/") else creds
        return web.Response(status=status, text=body)

    return handler


def _doc(**overrides: object) -> str:
    doc: dict[str, object] = {
        "Code": "Success",
        "AccessKeyId": "ASIAMINIMINIMINI0001",
        "SecretAccessKey": "mini-secret-recognisable",
        "Token": "mini-token-recognisable",
        "Expiration": (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    doc.update(overrides)
    return json.dumps({k: v for k, v in doc.items() if v is not None})


@pytest.mark.parametrize(
    ("roles", "creds", "match", "code"),
    [
        ((404, ""), (200, ""), "no IAM role", "NoInstanceProfile"),
        ((200, ""), (200, ""), "listed no role", "NoInstanceProfile"),
        ((200, "r"), (200, "{garbage"), "not JSON", "MalformedResponse"),
        ((200, "r"), (200, _doc(Token=None)), "Token", "MalformedResponse"),
        (
            (200, "r"),
            (200, _doc(Code="AssumeRoleUnauthorizedAccess")),
            "trusts ec2.amazonaws.com",
            "AssumeRoleUnauthorizedAccess",
        ),
        (
            (200, "r"),
            (200, _doc(Expiration="2001-01-01T00:00:00Z")),
            "already expired",
            "ExpiredOnArrival",
        ),
    ],
    ids=["no-profile", "empty-role-list", "garbage", "missing-token", "code", "expired"],
)
async def test_bad_documents_fail_without_retry(
    mini, roles: Answer, creds: Answer, match: str, code: str, no_secret
) -> None:
    """Missing role, garbage, missing fields, an error Code, expired credentials: not retried."""
    mini.handler = _mini_imds(roles, creds)
    async with InstanceMetadataSource(endpoint=mini.url, **FAST) as source:
        with pytest.raises(CredentialFetchError, match=match) as info:
            await source.fetch()
    assert info.value.retryable is False and info.value.code == code
    assert [m for m, _, _ in mini.requests].count("PUT") == 1
    for secret in ("mini-secret-recognisable", "mini-token-recognisable", "session-token-recog"):
        no_secret(secret, info.value)


def test_from_env_endpoint_rules() -> None:
    """Endpoint override wins over IPv6 mode; IPv6 mode uses fd00:ec2::254; default IPv4."""
    assert InstanceMetadataSource.from_env({}).endpoint == "http://169.254.169.254"
    ipv6 = {"AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE": "IPv6"}
    assert InstanceMetadataSource.from_env(ipv6).endpoint == "http://[fd00:ec2::254]"
    both = ipv6 | {"AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://127.0.0.1:9/"}
    assert InstanceMetadataSource.from_env(both).endpoint == "http://127.0.0.1:9"


@pytest.mark.parametrize(
    ("env", "match"),
    [
        ({"AWS_EC2_METADATA_DISABLED": "TRUE"}, "AWS_EC2_METADATA_DISABLED"),
        ({"AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE": "ipv5"}, "IPv4 or IPv6"),
        ({"AWS_EC2_METADATA_SERVICE_ENDPOINT": "169.254.169.254"}, "not an http"),
    ],
)
def test_from_env_refuses_disabled_or_bad_settings(env: dict[str, str], match: str) -> None:
    """Disabled IMDS, an unknown mode and a non-URL endpoint are configuration errors."""
    with pytest.raises(ConfigurationError, match=match):
        InstanceMetadataSource.from_env(env)


async def test_secrets_absent_from_success_logs(aws: AwsStandIns, no_secret) -> None:
    """A successful fetch logs the key hint only: no secret key or session token."""
    async with InstanceMetadataSource.from_env(aws.env_for("ec2")) as source:
        creds = await source.fetch()
    assert creds.session_token is not None
    no_secret(creds.secret_access_key, None)
    no_secret(creds.session_token, None)
    assert source._token is None  # the IMDS session token is dropped at close


async def test_persistent_401_after_renewal_is_not_retried(
    aws: AwsStandIns, faults: FaultInjector
) -> None:
    """401 even with a freshly issued token: renewed once, then a non-retryable error."""
    faults.add("imds:roles:error=401")
    async with InstanceMetadataSource.from_env(aws.env_for("ec2"), **FAST) as source:
        with pytest.raises(CredentialFetchError, match="401") as info:
            await source.fetch()
    assert info.value.retryable is False and info.value.code == "TokenRejected"
    assert aws.imds.tokens_issued == 2 and aws.imds.requests["roles"] == 2
