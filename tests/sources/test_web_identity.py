"""WebIdentitySource (EKS IRSA) against the STS stand-in."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import anyio
import pytest

from pool import ConfigurationError, CredentialFetchError
from pool.sources import WebIdentitySource, _http
from pool.standins.aws import AwsStandIns
from pool.standins.faults import FaultInjector

FAST = {"timeout": 0.5, "connect_timeout": 0.5, "backoff": 0.0}


def _env(aws: AwsStandIns, **extra: str) -> dict[str, str]:
    return aws.env_for("eks_irsa") | extra


async def test_irsa_variables_assume_the_role(aws: AwsStandIns) -> None:
    """The IRSA variables yield STS-minted credentials for AWS_ROLE_ARN with the session name."""
    async with WebIdentitySource.from_env(_env(aws)) as source:
        creds = await source.fetch()
    issued = aws.authority.lookup(creds.access_key_id)
    assert issued is not None and issued.role_arn == aws.role_arn
    assert issued.session_name == "eks-irsa"
    assert creds.session_token == issued.session_token and creds.expiration == issued.expiration
    assert creds.source == source.name == "eks_irsa"
    assert aws.sts.requests["AssumeRoleWithWebIdentity"] == 1


async def test_name_is_eks_irsa_on_kubernetes(aws: AwsStandIns) -> None:
    """Inside Kubernetes (KUBERNETES_SERVICE_HOST set) the source is named 'eks_irsa'."""
    source = WebIdentitySource.from_env(_env(aws, KUBERNETES_SERVICE_HOST="10.0.0.1"))
    assert source.name == "eks_irsa"


async def test_one_session_reused_and_no_import_on_the_loop(
    aws: AwsStandIns, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One HTTP session serves every fetch, concurrent first ones too; aiohttp loads off-loop."""
    threads: list[threading.Thread] = []
    original = _http._import_aiohttp

    def spy() -> Any:
        threads.append(threading.current_thread())
        return original()

    monkeypatch.setattr(_http, "_aiohttp", None)
    monkeypatch.setattr(_http, "_import_aiohttp", spy)
    async with WebIdentitySource.from_env(_env(aws)) as source:
        async with anyio.create_task_group() as tg:
            for _ in range(3):  # concurrent first fetches still open one session
                tg.start_soon(source.fetch)
        client = source.sts.client
        await source.fetch()
        assert source.sts.client is client and source.sts.clients_created == 1
        assert source.sts.connections_opened <= 3  # keep-alive: no new connection per fetch
    assert threads and all(t is not threading.main_thread() for t in threads)
    assert source.sts.client is None
    assert aws.sts.requests["AssumeRoleWithWebIdentity"] == 4


async def test_token_file_is_reread_at_every_fetch(aws: AwsStandIns, no_secret) -> None:
    """A rotated token is used by the next fetch; a bad one fails without leaking it."""
    async with WebIdentitySource.from_env(_env(aws)) as source:
        await source.fetch()
        await aws.rotate_web_identity_token()
        await source.fetch()
        planted = "eyJplanted.SECRET-WEB-IDENTITY-TOKEN.signature"
        aws.web_identity_token_file.write_text(planted)
        with pytest.raises(CredentialFetchError, match="InvalidIdentityToken") as info:
            await source.fetch()
    assert info.value.retryable is False and info.value.code == "InvalidIdentityToken"
    assert "OIDC" in str(info.value)  # the fix hint
    no_secret(planted, info.value)
    no_secret("SECRET-WEB-IDENTITY-TOKEN", info.value)


async def test_expired_web_identity_token_is_not_retried(aws: AwsStandIns) -> None:
    """An expired projected token gives ExpiredTokenException, non-retryable, with a hint."""
    stale = aws.authority.issue_web_identity_token(lifetime=-1)
    aws.web_identity_token_file.write_text(stale)
    async with WebIdentitySource.from_env(_env(aws)) as source:
        with pytest.raises(CredentialFetchError, match="ExpiredTokenException") as info:
            await source.fetch()
    assert info.value.retryable is False and "projected" in str(info.value)


async def test_missing_or_unreadable_token_file(aws: AwsStandIns, tmp_path: Path) -> None:
    """A missing token file or a directory in its place fails before STS is called."""
    for path in (tmp_path / "absent", tmp_path):
        env = _env(aws, AWS_WEB_IDENTITY_TOKEN_FILE=str(path))
        async with WebIdentitySource.from_env(env) as source:
            with pytest.raises(CredentialFetchError, match="cannot read") as info:
                await source.fetch()
        assert info.value.retryable is False and str(path) in str(info.value)
    assert aws.sts.requests["AssumeRoleWithWebIdentity"] == 0


async def test_access_denied_is_not_retried(aws: AwsStandIns) -> None:
    """A role that does not trust the caller: AccessDenied, HTTP 403, non-retryable, one call."""
    aws.authority.configure_role(aws.role_arn, trusted=False)
    async with WebIdentitySource.from_env(_env(aws)) as source:
        with pytest.raises(CredentialFetchError, match="AccessDenied") as info:
            await source.fetch()
    assert (info.value.retryable, info.value.status, info.value.code) == (
        False,
        403,
        "AccessDenied",
    )
    assert aws.sts.requests["AssumeRoleWithWebIdentity"] == 1


@pytest.mark.parametrize(
    ("fault", "code", "status"),
    [
        ("sts:throttle", "Throttling", 400),
        ("sts:error=503", "ServiceUnavailable", 503),
        ("sts:error=500", "InternalFailure", 500),
    ],
)
async def test_throttling_and_5xx_are_retryable_and_bounded(
    aws: AwsStandIns, faults: FaultInjector, fault: str, code: str, status: int
) -> None:
    """Throttling and 5xx are retryable and tried exactly `attempts` times."""
    faults.add(fault)
    async with WebIdentitySource.from_env(_env(aws), attempts=2, **FAST) as source:
        with pytest.raises(CredentialFetchError, match=code) as info:
            await source.fetch()
    assert (info.value.retryable, info.value.code, info.value.status) == (True, code, status)
    assert aws.sts.requests["AssumeRoleWithWebIdentity"] == 2


async def test_one_throttle_then_success(aws: AwsStandIns, faults: FaultInjector) -> None:
    """A single Throttling answer is retried and the fetch succeeds."""
    faults.add("sts:AssumeRoleWithWebIdentity:throttlex1")
    async with WebIdentitySource.from_env(_env(aws), **FAST) as source:
        assert (await source.fetch()).source == "eks_irsa"
    assert aws.sts.requests["AssumeRoleWithWebIdentity"] == 2


async def test_hang_times_out_as_retryable(aws: AwsStandIns, faults: FaultInjector) -> None:
    """STS that never answers fails after the timeout as retryable."""
    faults.add("sts:hang")
    async with WebIdentitySource.from_env(_env(aws), attempts=1, **FAST) as source:
        with pytest.raises(CredentialFetchError, match="timed out") as info:
            await source.fetch()
    assert info.value.retryable is True and info.value.code == "Timeout"


async def test_credentials_expired_on_arrival(stale_aws: AwsStandIns) -> None:
    """STS answering already-expired credentials is a non-retryable error."""
    async with WebIdentitySource.from_env(stale_aws.env_for("eks_irsa")) as source:
        with pytest.raises(CredentialFetchError, match="already expired") as info:
            await source.fetch()
    assert info.value.retryable is False


@pytest.mark.parametrize(
    ("status", "body", "retryable"),
    [
        (200, "this is not xml", False),
        (
            200,
            '<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
            "<AssumeRoleWithWebIdentityResult/></AssumeRoleWithWebIdentityResponse>",
            False,
        ),
        (502, "<html>bad gateway</html>", True),
    ],
    ids=["garbage", "no-credentials", "html-502"],
)
async def test_malformed_sts_answers(
    mini, aws: AwsStandIns, status: int, body: str, retryable: bool
) -> None:
    """Garbage or credential-less 200s are non-retryable; a 5xx HTML page is retryable."""
    mini.answer(status, body, **{"Content-Type": "text/xml"})
    env = _env(aws, AWS_ENDPOINT_URL_STS=mini.url)
    async with WebIdentitySource.from_env(env, attempts=1) as source:
        with pytest.raises(CredentialFetchError) as info:
            await source.fetch()
    assert info.value.retryable is retryable
    if not retryable:
        assert info.value.code == "MalformedResponse"


async def test_duration_seconds_is_sent(aws: AwsStandIns) -> None:
    """duration_seconds reaches STS: the credentials live that long, not the default hour."""
    async with WebIdentitySource.from_env(_env(aws), duration_seconds=900) as source:
        creds = await source.fetch()
    assert creds.ttl_at_fetch is not None and 800 < creds.ttl_at_fetch <= 901


def test_constructor_validates_before_any_call(tmp_path: Path) -> None:
    """Bad durations, session names and role ARNs are refused at construction."""
    ok = {"role_arn": "arn:aws:iam::123456789012:role/app", "token_file": tmp_path / "t"}
    with pytest.raises(ConfigurationError, match="900"):
        WebIdentitySource(**ok, duration_seconds=60)
    with pytest.raises(ConfigurationError, match="session name"):
        WebIdentitySource(**ok, session_name="has space")
    with pytest.raises(ConfigurationError, match="role ARN"):
        WebIdentitySource(role_arn="app", token_file=tmp_path / "t")
    generated = WebIdentitySource(**ok).session_name
    assert generated.startswith("mongodb-aws-pool-")


def test_from_env_region_endpoint_and_missing_role(tmp_path: Path) -> None:
    """Region and STS endpoint come from the standard variables; a missing role ARN is named."""
    base = {"AWS_WEB_IDENTITY_TOKEN_FILE": str(tmp_path / "t")}
    with pytest.raises(ConfigurationError, match="AWS_ROLE_ARN"):
        WebIdentitySource.from_env(base)
    env = base | {"AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/app"}
    source = WebIdentitySource.from_env(env)
    assert (source.sts.region, source.sts.endpoint_url) == ("us-east-1", None)
    assert source.sts.where == "sts.us-east-1.amazonaws.com/"
    env |= {"AWS_DEFAULT_REGION": "eu-west-1", "AWS_ENDPOINT_URL": "http://127.0.0.1:1"}
    source = WebIdentitySource.from_env(env)
    assert (source.sts.region, source.sts.endpoint_url) == ("eu-west-1", "http://127.0.0.1:1")
    env |= {"AWS_REGION": "eu-central-1", "AWS_ENDPOINT_URL_STS": "http://127.0.0.1:2"}
    source = WebIdentitySource.from_env(env)
    assert (source.sts.region, source.sts.endpoint_url) == ("eu-central-1", "http://127.0.0.1:2")
    source = WebIdentitySource.from_env(env | {"AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true"})
    assert source.sts.endpoint_url is None


async def test_success_logs_carry_no_secret(aws: AwsStandIns, logs, no_secret) -> None:
    """Fetch start/end are logged with source and duration, never the token or the keys."""
    async with WebIdentitySource.from_env(_env(aws)) as source:
        creds = await source.fetch()
    end = [e for e in logs if e["event"] == "credentials.fetch.end"]
    assert end and end[0]["source"] == "eks_irsa" and "duration_ms" in end[0]
    assert creds.session_token is not None
    for secret in (aws.web_identity_token, creds.secret_access_key, creds.session_token):
        no_secret(secret, None)


async def test_sts_message_is_redacted_and_logged_once(
    mini, aws: AwsStandIns, logs, no_secret
) -> None:
    """STS's message is quoted without the token or key-shaped text; one warning per fetch."""
    unknown = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"  # never given to the source
    token = aws.web_identity_token
    mini.answer(
        400,
        '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error>'
        "<Type>Sender</Type><Code>InvalidIdentityToken</Code>"
        f"<Message>Bad audience in {token} signed by {unknown}</Message>"
        "</Error><RequestId>r-1</RequestId></ErrorResponse>",
        **{"Content-Type": "text/xml"},
    )
    env = _env(aws, AWS_ENDPOINT_URL_STS=mini.url)
    async with WebIdentitySource.from_env(env, attempts=2, **FAST) as source:
        with pytest.raises(CredentialFetchError, match="Bad audience in") as info:
            await source.fetch()
    assert info.value.code == "InvalidIdentityToken" and info.value.retryable is False
    for secret in (token, unknown):
        no_secret(secret, info.value)
    failures = [e for e in logs if e["event"] == "credentials.fetch.failed"]
    assert len(failures) == 1 and failures[0]["log_level"] == "warning"
    assert "Bad audience in" in failures[0]["reason"]
