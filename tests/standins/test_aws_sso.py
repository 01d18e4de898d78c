"""The SSO stand-in (portal and OIDC) and the laptop home, as botocore sees them.

botocore blocks, so it runs against ``threaded_aws`` in a worker thread; the
variables point it at the temporary home (never the real ~/.aws).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import anyio
import botocore.credentials
import botocore.session
import botocore.tokens
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError, TokenRetrievalError, UnauthorizedSSOTokenError

from pool.sources.profile import ProfileSource
from pool.standins.aws import AwsStandIns
from pool.standins.emulator import Emulator
from pool.standins.laptop import DeveloperHome
from tests.standins.net_guard import *  # noqa: F403 (the loopback_only fixture)


def _botocore_credentials(profile: str) -> object:
    session = botocore.session.Session(profile=profile)
    return session.get_credentials().get_frozen_credentials()


def _use(env: pytest.MonkeyPatch, home: DeveloperHome, profile: str) -> None:
    for name, value in home.env(profile).items():
        env.setenv(name, value)
    # botocore 1.40.61 fixes its SSO token cache directory when the module is imported
    # (class attributes expanding ~ then): point both at the temporary home.
    cache = str(home.aws_dir / "sso" / "cache")
    env.setattr(botocore.credentials.SSOProvider, "_SSO_TOKEN_CACHE_DIR", cache)
    env.setattr(botocore.tokens.SSOTokenProvider, "_SSO_TOKEN_CACHE_DIR", cache)


@pytest.mark.parametrize("profile", ["sso", "sso-legacy", "static", "process", "chained-twice"])
async def test_botocore_resolves_every_laptop_profile(
    clean_aws_env: pytest.MonkeyPatch, threaded_aws: AwsStandIns, profile: str
) -> None:
    """botocore's own chain gets credentials the authority issued for each kind of profile."""
    async with DeveloperHome(threaded_aws) as home:
        _use(clean_aws_env, home, profile)
        creds = await anyio.to_thread.run_sync(_botocore_credentials, profile)
    assert threaded_aws.authority.lookup(creds.access_key) is not None  # type: ignore[attr-defined]


async def test_botocore_refused_by_the_portal_after_sign_out(
    clean_aws_env: pytest.MonkeyPatch, threaded_aws: AwsStandIns
) -> None:
    """A revoked token makes botocore's SSO provider fail with its own 'unauthorized' error."""
    async with DeveloperHome(threaded_aws) as home:
        _use(clean_aws_env, home, "sso")
        threaded_aws.sso.revoke_all()
        with pytest.raises(UnauthorizedSSOTokenError):
            await anyio.to_thread.run_sync(_botocore_credentials, "sso")


async def test_portal_answers_like_the_real_api(aws: AwsStandIns) -> None:
    """GetRoleCredentials: 200 with epoch-ms expiration, 401 without a token, 403 off-role."""
    token = aws.sso.issue_token()
    url = f"{aws.sso_url}/federation/credentials"
    params = {"role_name": "standin-app", "account_id": aws.authority.account_id}
    async with aiohttp.ClientSession() as http:
        headers = {"x-amz-sso_bearer_token": token}
        async with http.get(url, params=params, headers=headers) as resp:
            doc = await resp.json()
        assert resp.status == 200 and doc["roleCredentials"]["expiration"] > 10**12
        async with http.get(url, params=params) as resp:
            assert resp.status == 401
            assert resp.headers["x-amzn-ErrorType"].startswith("UnauthorizedException")
        other = params | {"role_name": "admin"}
        async with http.get(url, params=other, headers=headers) as resp:
            assert resp.status == 403


def _botocore_token(profile: str) -> tuple[str, datetime]:
    """botocore's own token path for an sso-session profile (refreshing when it decides to)."""
    provider = botocore.tokens.SSOTokenProvider(botocore.session.Session(profile=profile))
    frozen = provider.load_token().get_frozen_token()
    return frozen.token, frozen.expiration


async def test_botocore_refreshes_its_token_against_the_oidc_standin(
    clean_aws_env: pytest.MonkeyPatch, threaded_aws: AwsStandIns
) -> None:
    """botocore's SSOTokenProvider: 5 min left, CreateToken at the stand-in, a new token cached."""
    async with DeveloperHome(threaded_aws, sso_token_lifetime=300) as home:
        _use(clean_aws_env, home, "sso")
        before = home.read_sso_cache()
        token, expiration = await anyio.to_thread.run_sync(_botocore_token, "sso")
        after = home.read_sso_cache()
        # The library reads what botocore wrote: a fresh token, so no refresh of its own.
        async with ProfileSource(environ=home.env("sso")) as source:
            creds = await source.fetch()
    assert threaded_aws.sso.requests["CreateToken"] == 1
    assert token == after["accessToken"] != before["accessToken"]
    assert after["refreshToken"] != before["refreshToken"]
    assert expiration - datetime.now(UTC) > timedelta(minutes=55)
    assert threaded_aws.authority.lookup(creds.access_key_id) is not None


async def test_botocore_parses_the_oidc_standins_errors(
    clean_aws_env: pytest.MonkeyPatch, threaded_aws: AwsStandIns
) -> None:
    """CreateToken errors as botocore models them: InvalidGrantException, InvalidClientException."""
    login = threaded_aws.sso.login()
    clean_aws_env.setenv("AWS_ENDPOINT_URL_SSO_OIDC", threaded_aws.sso_url)

    def create_token(**overrides: str) -> dict[str, Any]:
        client = botocore.session.Session().create_client(
            "sso-oidc", region_name="us-east-1", config=Config(signature_version=UNSIGNED)
        )
        args = {"grantType": "refresh_token", "clientId": login.client_id,
                "clientSecret": login.client_secret,
                "refreshToken": login.refresh_token}  # fmt: skip
        try:
            answer: dict[str, Any] = client.create_token(**(args | overrides))
            return answer
        except ClientError as exc:
            return exc.response  # type: ignore[return-value]

    wrong_client = await anyio.to_thread.run_sync(lambda: create_token(clientSecret="nope"))
    first = await anyio.to_thread.run_sync(create_token)
    spent = await anyio.to_thread.run_sync(create_token)  # the refresh token was rotated
    assert wrong_client["Error"]["Code"] == "InvalidClientException"
    assert wrong_client["ResponseMetadata"]["HTTPStatusCode"] == 401
    assert first["tokenType"] == "Bearer" and first["expiresIn"] == 3600
    assert first["accessToken"] and first["refreshToken"] != login.refresh_token
    assert spent["Error"]["Code"] == "InvalidGrantException" and spent["error"] == "invalid_grant"
    assert spent["ResponseMetadata"]["HTTPStatusCode"] == 400


async def test_botocore_fails_like_the_library_when_the_session_ended(
    clean_aws_env: pytest.MonkeyPatch, threaded_aws: AwsStandIns
) -> None:
    """Expired token, refresh refused: botocore's TokenRetrievalError (the library: log in)."""
    async with DeveloperHome(threaded_aws) as home:
        _use(clean_aws_env, home, "sso")
        await home.expire_sso_token()
        with pytest.raises(TokenRetrievalError, match="refresh failed"):
            await anyio.to_thread.run_sync(_botocore_token, "sso")
    assert threaded_aws.sso.requests["CreateToken"] == 1


async def test_emulator_laptop_refresh_stays_on_loopback(loopback_only: list[str]) -> None:
    """The emulator's laptop block exports AWS_ENDPOINT_URL_SSO_OIDC: its refresh is loopback."""
    async with Emulator(lifetime=6) as em:
        env = em.summary()["laptop"]["sso"]
        assert env["AWS_ENDPOINT_URL_SSO_OIDC"] == em.aws.sso_url
        async with ProfileSource(environ=env) as source:  # a 2-minute token: in the window
            creds = await source.fetch()
        assert em.aws.sso.requests["CreateToken"] == 1
        assert em.authority.lookup(creds.access_key_id) is not None
    assert set(loopback_only) <= {"127.0.0.1"}  # all that reached a resolver, if anything
