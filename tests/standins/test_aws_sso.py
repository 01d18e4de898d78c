"""The SSO portal stand-in and the laptop home, as botocore and the AWS CLI's config see them.

botocore blocks, so it runs against ``threaded_aws`` in a worker thread; the
variables point it at the temporary home (never the real ~/.aws).
"""

from __future__ import annotations

import aiohttp
import anyio
import botocore.credentials
import botocore.session
import botocore.tokens
import pytest
from botocore.exceptions import UnauthorizedSSOTokenError

from pool.standins.aws import AwsStandIns
from pool.standins.laptop import DeveloperHome


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
