"""ContainerSource (ECS, EKS Pod Identity) against the container stand-ins."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web

from pool import ConfigurationError, CredentialFetchError, PoolClosedError
from pool.sources import ContainerSource
from pool.standins.aws import AwsStandIns
from pool.standins.faults import FaultInjector

FAST = {"timeout": 0.3, "connect_timeout": 0.3, "backoff": 0.0}


def _doc(**overrides: object) -> str:
    doc: dict[str, object] = {
        "AccessKeyId": "ASIAMINIMINIMINI0001",
        "SecretAccessKey": "mini-secret-recognisable",
        "Token": "mini-token-recognisable",
        "Expiration": (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    doc.update(overrides)
    return json.dumps({k: v for k, v in doc.items() if v is not None})


async def test_ecs_full_uri_with_token_serves_the_task_role(aws: AwsStandIns) -> None:
    """ECS: the endpoint's credentials come back, named 'ecs', with their expiration."""
    async with ContainerSource.from_env(aws.env_for("ecs")) as source:
        creds = await source.fetch()
    served = aws.ecs.vendor.current()
    assert source.name == "ecs" and creds.source == "ecs"
    assert creds.access_key_id == served.access_key_id
    assert creds.secret_access_key == served.secret_access_key
    assert creds.session_token == served.session_token
    assert creds.expiration == served.expiration


async def test_eks_pod_identity_with_token_file(aws: AwsStandIns) -> None:
    """EKS Pod Identity: the token file supplies the Authorization header; named accordingly."""
    async with ContainerSource.from_env(aws.env_for("eks_pod_identity")) as source:
        creds = await source.fetch()
    assert source.name == "eks_pod_identity"
    assert creds.access_key_id == aws.pod_identity.vendor.current().access_key_id


async def test_token_file_is_reread_at_every_fetch(aws: AwsStandIns) -> None:
    """A rotated token file is picked up by the next fetch (the old token would be refused)."""
    async with ContainerSource.from_env(aws.env_for("eks_pod_identity")) as source:
        await source.fetch()
        await aws.rotate_pod_identity_token()
        creds = await source.fetch()
    assert creds.access_key_id == aws.pod_identity.vendor.current().access_key_id


async def test_token_file_wins_over_token_variable(aws: AwsStandIns) -> None:
    """AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE takes precedence over ..._TOKEN."""
    env = aws.env_for("eks_pod_identity") | {"AWS_CONTAINER_AUTHORIZATION_TOKEN": "wrong"}
    async with ContainerSource.from_env(env) as source:
        assert (await source.fetch()).source == "eks_pod_identity"


async def test_one_session_and_one_connection_across_fetches(aws: AwsStandIns) -> None:
    """Fetches reuse one aiohttp session and its keep-alive connection; aclose releases it."""
    async with ContainerSource.from_env(aws.env_for("ecs")) as source:
        await source.fetch()
        session = source.http.session
        for _ in range(4):
            await source.fetch()
        assert source.http.session is session
        assert source.http.connections_opened == 1
        assert aws.ecs.requests["credentials"] == 5
    assert source.http.session is None and session is not None and session.closed
    with pytest.raises(PoolClosedError):
        await source.fetch()


@pytest.mark.parametrize(
    ("env_token", "status"), [(None, 401), ("not-the-token", 403)], ids=["missing", "wrong"]
)
async def test_refused_token_is_not_retried(
    aws: AwsStandIns, env_token: str | None, status: int, no_secret
) -> None:
    """401/403 from the endpoint are non-retryable, sent once, and name status and fix."""
    source = ContainerSource(full_uri=aws.ecs_full_uri, auth_token=env_token, **FAST)
    async with source:
        with pytest.raises(CredentialFetchError, match=f"HTTP {status}") as info:
            await source.fetch()
    assert info.value.retryable is False and info.value.status == status
    assert "AWS_CONTAINER_AUTHORIZATION_TOKEN" in str(info.value)
    assert aws.ecs.requests["credentials"] == 1
    no_secret(aws.ecs_auth_token, info.value)


async def test_5xx_is_retried_then_succeeds(aws: AwsStandIns, faults: FaultInjector) -> None:
    """One 500 then success: the fetch succeeds on the second attempt."""
    faults.add("ecs:error=500x1")
    async with ContainerSource.from_env(aws.env_for("ecs"), **FAST) as source:
        creds = await source.fetch()
    assert creds.source == "ecs" and aws.ecs.requests["credentials"] == 2


async def test_retries_are_bounded(aws: AwsStandIns, faults: FaultInjector, no_secret) -> None:
    """A persistent 503 is tried exactly `attempts` times, then raised as retryable."""
    faults.add("ecs:error=503")
    async with ContainerSource.from_env(aws.env_for("ecs"), attempts=3, **FAST) as source:
        with pytest.raises(CredentialFetchError, match="HTTP 503") as info:
            await source.fetch()
    assert info.value.retryable is True and info.value.status == 503
    assert aws.ecs.requests["credentials"] == 3
    assert "ecs" in str(info.value) and "127.0.0.1" in str(info.value)
    no_secret(aws.ecs_auth_token, info.value)


async def test_throttling_is_retryable(aws: AwsStandIns, faults: FaultInjector) -> None:
    """HTTP 429 from the endpoint is a retryable error with the status."""
    faults.add("ecs:throttle")
    async with ContainerSource.from_env(aws.env_for("ecs"), attempts=1, **FAST) as source:
        with pytest.raises(CredentialFetchError) as info:
            await source.fetch()
    assert info.value.retryable is True and info.value.status == 429


async def test_hang_times_out_as_retryable(aws: AwsStandIns, faults: FaultInjector) -> None:
    """An endpoint that never answers fails after the timeout, retryable, naming the endpoint."""
    faults.add("ecs:hang")
    async with ContainerSource.from_env(aws.env_for("ecs"), attempts=2, **FAST) as source:
        with pytest.raises(CredentialFetchError, match="timed out") as info:
            await source.fetch()
    assert info.value.retryable is True and info.value.code == "Timeout"
    assert aws.ecs.requests["credentials"] == 2


async def test_dropped_connection_is_retryable(aws: AwsStandIns, faults: FaultInjector) -> None:
    """A connection closed without an answer is a retryable connection error."""
    faults.add("eks_pod_identity:drop")
    env = aws.env_for("eks_pod_identity")
    async with ContainerSource.from_env(env, attempts=1, **FAST) as source:
        with pytest.raises(CredentialFetchError) as info:
            await source.fetch()
    assert info.value.retryable is True and info.value.code == "ConnectionError"


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "not an object"),
        (_doc(Token=None), "Token"),
        (_doc(SecretAccessKey=None, Expiration=None), "SecretAccessKey, Expiration"),
        (_doc(Expiration="soon"), "ISO 8601"),
        (_doc(Expiration="2001-01-01T00:00:00Z"), "already expired"),
    ],
    ids=["garbage", "array", "no-token", "missing-fields", "bad-expiration", "expired"],
)
async def test_malformed_or_expired_documents_are_not_retried(
    mini, body: str, match: str, no_secret
) -> None:
    """Garbage, missing fields and expired credentials fail at once, naming the problem."""
    mini.answer(200, body, **{"Content-Type": "application/json"})
    async with ContainerSource(full_uri=mini.url + "/creds", **FAST) as source:
        with pytest.raises(CredentialFetchError, match=match) as info:
            await source.fetch()
    assert info.value.retryable is False
    assert len(mini.requests) == 1
    no_secret("mini-secret-recognisable", info.value)
    no_secret("mini-token-recognisable", info.value)


async def test_oversized_body_and_redirect_are_refused(mini) -> None:
    """A body over the cap and a redirect are non-retryable; the redirect is not followed."""
    mini.answer(200, "x" * (64 * 1024 + 1))
    async with ContainerSource(full_uri=mini.url + "/creds", **FAST) as source:
        with pytest.raises(CredentialFetchError, match="larger than") as info:
            await source.fetch()
        assert info.value.retryable is False
        mini.answer(302, "", Location=mini.url + "/elsewhere")
        with pytest.raises(CredentialFetchError, match="redirect") as info:
            await source.fetch()
        assert info.value.retryable is False
    assert [path for _, path, _ in mini.requests] == ["/creds", "/creds"]


async def test_token_file_missing_or_unreadable(aws: AwsStandIns, tmp_path: Path) -> None:
    """A missing token file, or a directory in its place, fails before any request."""
    for path in (tmp_path / "absent", tmp_path):
        env = aws.env_for("eks_pod_identity") | {
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(path)
        }
        async with ContainerSource.from_env(env, **FAST) as source:
            with pytest.raises(CredentialFetchError, match="cannot read") as info:
                await source.fetch()
        assert info.value.retryable is False and str(path) in str(info.value)
    assert aws.pod_identity.requests["credentials"] == 0


async def test_crlf_in_tokens_is_refused(aws: AwsStandIns, tmp_path: Path) -> None:
    """CR/LF in a token variable fails at construction; in a token file, at fetch, unsent."""
    env = aws.env_for("ecs") | {"AWS_CONTAINER_AUTHORIZATION_TOKEN": "abc\r\nX-Evil: 1"}
    with pytest.raises(ConfigurationError, match="CR/LF"):
        ContainerSource.from_env(env)
    token_file = tmp_path / "token"
    token_file.write_text(aws.pod_identity_token + "\n")
    env = aws.env_for("eks_pod_identity") | {
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(token_file)
    }
    async with ContainerSource.from_env(env, **FAST) as source:
        with pytest.raises(CredentialFetchError, match="CR/LF") as info:
            await source.fetch()
    assert info.value.retryable is False
    assert aws.pod_identity.requests["credentials"] == 0


@pytest.mark.parametrize(
    "uri",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://example.com/creds",
        "http://10.0.0.1/creds",
        "ftp://127.0.0.1/creds",
        "/relative/only",
        "https://creds.example.com/v1",
        "https://evil.test/",
        "HtTpS://evil.test/creds",
        "https://169.254.169.254/",
    ],
)
def test_refused_full_uris(uri: str) -> None:
    """Any scheme outside botocore's allowed hosts is refused before any request, with the fix."""
    with pytest.raises(ConfigurationError) as info:
        ContainerSource.from_env({"AWS_CONTAINER_CREDENTIALS_FULL_URI": uri})
    assert "AWS_CONTAINER_CREDENTIALS_FULL_URI" in str(info.value)


@pytest.mark.parametrize(
    ("uri", "name"),
    [
        ("https://localhost:8443/v1", "ecs"),
        ("http://127.0.0.2:8080/creds", "ecs"),
        ("http://[::1]:8080/creds", "ecs"),
        ("http://localhost/creds", "ecs"),
        ("http://169.254.170.2/v2/credentials/x", "ecs"),
        ("http://169.254.170.23/v1/credentials", "eks_pod_identity"),
        ("http://[fd00:ec2::23]/v1/credentials", "eks_pod_identity"),
    ],
)
def test_allowed_full_uris(uri: str, name: str) -> None:
    """http or https to loopback, the ECS and EKS agent addresses, localhost (botocore's rule)."""
    source = ContainerSource.from_env({"AWS_CONTAINER_CREDENTIALS_FULL_URI": uri})
    assert source.url == uri and source.name == name


def test_relative_uri_resolves_against_ecs_agent_and_wins() -> None:
    """The relative URI goes to 169.254.170.2 and takes precedence over the full URI."""
    source = ContainerSource.from_env(
        {
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials/abc",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://example.com/refused-if-used",
        }
    )
    assert source.url == "http://169.254.170.2/v2/credentials/abc" and source.name == "ecs"
    with pytest.raises(ConfigurationError, match="neither"):
        ContainerSource.from_env({})


async def test_unclosed_source_warns(aws: AwsStandIns) -> None:
    """A source dropped while holding its HTTP session warns with ResourceWarning."""
    source = ContainerSource.from_env(aws.env_for("ecs"))
    await source.fetch()
    with pytest.warns(ResourceWarning, match="not closed"):
        source.__del__()
    await source.aclose()


async def test_body_streamed_in_small_chunks_is_read_whole(mini) -> None:
    """A document sent in many small chunks is read completely; an oversized stream is refused."""
    payload = _doc(Padding="p" * 20000).encode()

    def streaming(data: bytes):
        async def handler(request: web.Request) -> web.StreamResponse:
            response = web.StreamResponse()
            await response.prepare(request)
            for i in range(0, len(data), 512):
                await response.write(data[i : i + 512])
                await asyncio.sleep(0)
            await response.write_eof()
            return response

        return handler

    mini.handler = streaming(payload)
    async with ContainerSource(full_uri=mini.url + "/creds", **FAST) as source:
        assert (await source.fetch()).access_key_id == "ASIAMINIMINIMINI0001"
        mini.handler = streaming(payload * 4)
        with pytest.raises(CredentialFetchError, match="larger than"):
            await source.fetch()


async def test_unusable_url_is_not_retried_and_its_query_not_quoted(no_secret) -> None:
    """A URL aiohttp cannot use fails once, non-retryable, without its query or the token."""
    token = "container-auth-token-recognisable"
    uri = "https://exa_mple\u00e9..com/creds?sig=QUERY-SECRET-recognisable"
    # The constructor refuses such a host (botocore's rule, so the query never shows):
    with pytest.raises(ConfigurationError) as refused:
        ContainerSource(full_uri=uri, auth_token=token)
    no_secret("QUERY-SECRET-recognisable", refused.value)
    # The HTTP layer still fails cleanly on a URL it cannot use.
    allowed = "http://127.0.0.1:9/creds"
    async with ContainerSource(full_uri=allowed, auth_token=token, attempts=3, **FAST) as source:
        source.url = uri
        with pytest.raises(CredentialFetchError, match="not valid") as info:
            await source.fetch()
        assert source.http.requests_sent == 1
    assert info.value.retryable is False and info.value.code == "InvalidURL"
    no_secret("QUERY-SECRET-recognisable", info.value)
    no_secret(token, info.value)
