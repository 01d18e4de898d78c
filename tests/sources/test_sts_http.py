"""The STS calls over plain HTTP: answers parsed, errors named by STS's code, nothing leaked."""

from __future__ import annotations

import pytest

from pool import CredentialFetchError
from pool.sources import AssumeRoleSource, StaticSource, WebIdentitySource
from pool.standins.aws import AwsStandIns

NS = "https://sts.amazonaws.com/doc/2011-06-15/"
FAST = {"timeout": 0.5, "connect_timeout": 0.5, "backoff": 0.0}


def _error(code: str, message: str) -> str:
    return (
        f'<ErrorResponse xmlns="{NS}"><Error><Type>Sender</Type><Code>{code}</Code>'
        f"<Message>{message}</Message></Error><RequestId>r</RequestId></ErrorResponse>"
    )


@pytest.mark.parametrize(
    ("status", "code", "retryable", "hint"),
    [
        (400, "IDPCommunicationError", True, "identity provider"),
        (403, "RegionDisabledException", False, "not activated"),
        (400, "ExpiredTokenException", False, "projected"),
        (400, "InvalidIdentityToken", False, "OIDC"),
        (403, "AccessDenied", False, "trust policy"),
        (400, "Throttling", True, "retry later"),
    ],
)
async def test_sts_error_codes_are_named_with_their_fix(
    mini, aws: AwsStandIns, status: int, code: str, retryable: bool, hint: str
) -> None:
    """Each STS error code is reported with STS's message and a hint, retryable as it should be."""
    mini.answer(status, _error(code, "the reason STS gave"), **{"Content-Type": "text/xml"})
    env = aws.env_for("eks_irsa") | {"AWS_ENDPOINT_URL_STS": mini.url}
    async with WebIdentitySource.from_env(env, attempts=1, **FAST) as source:
        with pytest.raises(CredentialFetchError) as info:
            await source.fetch()
    err = info.value
    assert (err.code, err.status, err.retryable) == (code, status, retryable)
    assert "the reason STS gave" in str(err) and hint in str(err)


async def test_doctype_is_refused_as_malformed(mini, aws: AwsStandIns) -> None:
    """XML with a DOCTYPE (entity tricks) is not parsed: a non-retryable MalformedResponse."""
    body = '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>'
    mini.answer(200, body, **{"Content-Type": "text/xml"})
    env = aws.env_for("eks_irsa") | {"AWS_ENDPOINT_URL_STS": mini.url}
    async with WebIdentitySource.from_env(env, attempts=1, **FAST) as source:
        with pytest.raises(CredentialFetchError, match="not STS XML") as info:
            await source.fetch()
    assert info.value.code == "MalformedResponse" and info.value.retryable is False


async def test_request_is_a_form_post_with_the_query_api_version(mini, aws: AwsStandIns) -> None:
    """The call is POST / with a form body, as the STS Query API expects."""
    mini.answer(503, "busy")
    env = aws.env_for("eks_irsa") | {"AWS_ENDPOINT_URL_STS": mini.url}
    async with WebIdentitySource.from_env(env, attempts=1, **FAST) as source:
        with pytest.raises(CredentialFetchError, match="HTTP 503") as info:
            await source.fetch()
    assert info.value.retryable is True
    method, path, headers = mini.requests[0]
    assert (method, path) == ("POST", "/")
    assert headers["Content-Type"].startswith("application/x-www-form-urlencoded")
    assert "Authorization" not in headers  # AssumeRoleWithWebIdentity is unsigned


async def test_assume_role_is_signed_for_the_configured_region(aws: AwsStandIns) -> None:
    """AssumeRole carries a SigV4 signature scoped to the region; the stand-in verifies it."""
    issued = aws.authority.mint(session_name="base")
    assert issued.session_token is not None
    base = StaticSource(
        access_key_id=issued.access_key_id,
        secret_access_key=issued.secret_access_key,
        session_token=issued.session_token,
    )
    env = {"AWS_ENDPOINT_URL_STS": aws.sts_url, "AWS_REGION": aws.region}
    async with AssumeRoleSource.from_env(env, base=base, role_arn=aws.role_arn) as source:
        creds = await source.fetch()
        assert source.sts.region == aws.region and source.sts.signed
    assert aws.authority.lookup(creds.access_key_id) is not None


async def test_signing_secret_never_reaches_the_error(mini, aws: AwsStandIns, no_secret) -> None:
    """STS echoing the signing secret or token in its message: both are removed."""
    secret, token = "S" * 40, "PLANTED-SESSION-TOKEN-xyz"
    mini.answer(403, _error("AccessDenied", f"nope {secret} {token}"))
    base = StaticSource(access_key_id="ASIAPLANTED0000001", secret_access_key=secret,
                        session_token=token)  # fmt: skip
    role = "arn:aws:iam::123456789012:role/x"
    async with AssumeRoleSource(base, role_arn=role, endpoint_url=mini.url, **FAST) as source:
        with pytest.raises(CredentialFetchError, match="AccessDenied") as info:
            await source.fetch()
    no_secret(secret, info.value)
    no_secret(token, info.value)


def test_proxy_rules_follow_the_sdks_and_never_touch_loopback() -> None:
    """HTTPS_PROXY applies to STS hosts, NO_PROXY exempts them, loopback is never proxied."""
    from pool.sources._http import proxy_for

    env = {"HTTPS_PROXY": "http://proxy.corp:3128", "no_proxy": ".internal,foo.example"}
    assert proxy_for("https://sts.eu-west-1.amazonaws.com/", env) == "http://proxy.corp:3128"
    assert proxy_for("https://sts.eu-west-1.amazonaws.com/", {}) is None
    assert proxy_for("https://sts.vpce.internal/", env) is None
    assert proxy_for("https://foo.example/", env) is None
    assert proxy_for("http://127.0.0.1:8080/", env | {"HTTP_PROXY": "http://p:1"}) is None
    assert proxy_for("http://localhost:8080/", env | {"HTTP_PROXY": "http://p:1"}) is None
    assert proxy_for("https://sts.amazonaws.com/", env | {"NO_PROXY": "*"}) is None
