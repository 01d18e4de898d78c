"""SsoSource refreshes sso-session tokens through SSO OIDC CreateToken, as botocore does.

Against the SSO stand-in (portal + OIDC on one loopback server) in a temporary
HOME; botocore's own ``SSOTokenLoader``/``SSOTokenProvider`` read what the
library writes back (botocore 1.43.117).
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import pytest

from pool import CredentialFetchError
from pool.sources._sso_oidc import REFRESH_KEYS, oidc_token_url
from pool.sources.profile import ProfileSource
from pool.standins.aws import AwsStandIns
from pool.standins.faults import Fault
from pool.standins.laptop import SSO_SESSION, SSO_START_URL, DeveloperHome
from tests.sources.conftest import SecretCheck


def _source(home: DeveloperHome, profile: str = "sso") -> ProfileSource:
    return ProfileSource(environ=home.env(profile))


@pytest.fixture
async def near(aws: AwsStandIns) -> AsyncIterator[DeveloperHome]:
    """A home whose sso-session token has 5 minutes left: inside botocore's 15-minute window."""
    async with DeveloperHome(aws, sso_token_lifetime=300) as laptop:
        yield laptop


def _secrets_of(doc: dict[str, Any]) -> list[str]:
    return [doc["accessToken"], doc["refreshToken"], doc["clientSecret"]]


def _botocore_loader(home: DeveloperHome) -> Any:
    from botocore.tokens import _sso_json_dumps
    from botocore.utils import JSONFileCache, SSOTokenLoader

    cache = JSONFileCache(str(home.aws_dir / "sso" / "cache"), dumps_func=_sso_json_dumps)
    return SSOTokenLoader(cache=cache)


async def test_refresh_ahead_of_expiry_writes_back_what_botocore_reads(
    near: DeveloperHome, aws: AwsStandIns
) -> None:
    """5 min left: one CreateToken, the new token used and written 0600, botocore loads it."""
    before = near.read_sso_cache()
    async with _source(near) as source:
        creds = await source.fetch()
    assert aws.sso.requests["CreateToken"] == 1 and creds.source == "profile:sso"
    after = near.read_sso_cache()
    assert after["accessToken"] != before["accessToken"]
    assert after["refreshToken"] != before["refreshToken"]  # the stand-in rotates it
    for kept in ("clientId", "clientSecret", "registrationExpiresAt", "startUrl", "region"):
        assert after[kept] == before[kept], kept
    expires = datetime.strptime(after["expiresAt"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert timedelta(minutes=55) < expires - datetime.now(UTC) <= timedelta(hours=1)
    path = near.sso_cache_file(SSO_SESSION)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == sorted(
        [path.name, near.sso_cache_file(SSO_START_URL).name]
    )  # no temporary file left behind
    loaded = _botocore_loader(near)(SSO_START_URL, session_name=SSO_SESSION)
    assert loaded["accessToken"] == after["accessToken"]
    # The portal accepted the refreshed token, not the old one.
    assert aws.sso.requests["GetRoleCredentials"] == 1


async def test_botocore_token_provider_uses_the_written_token_without_refreshing(
    near: DeveloperHome, aws: AwsStandIns, monkeypatch: pytest.MonkeyPatch
) -> None:
    """botocore's SSOTokenProvider parses the written expiresAt: fresh, so no refresh of its own."""
    import botocore.session
    from botocore.tokens import SSOTokenProvider, _sso_json_dumps
    from botocore.utils import JSONFileCache

    async with _source(near) as source:
        await source.fetch()
    for name, value in near.env("sso").items():
        monkeypatch.setenv(name, value)
    cache = JSONFileCache(str(near.aws_dir / "sso" / "cache"), dumps_func=_sso_json_dumps)

    def botocore_token() -> str:
        provider = SSOTokenProvider(botocore.session.Session(profile="sso"), cache=cache)
        token: str = provider.load_token().get_frozen_token().token
        return token

    token = await anyio.to_thread.run_sync(botocore_token)
    assert token == near.read_sso_cache()["accessToken"]
    assert aws.sso.requests["CreateToken"] == 1  # ours only


async def test_expired_token_with_a_good_refresh_token_gives_credentials(
    home: DeveloperHome, aws: AwsStandIns
) -> None:
    """An expired access token whose session goes on: refreshed, then traded for role keys."""
    await home.expire_sso_token(session_ended=False)
    async with _source(home) as source:
        creds = await source.fetch()
    issued = aws.authority.lookup(creds.access_key_id)
    assert issued is not None and issued.role_arn == aws.role_arn
    assert aws.sso.requests["CreateToken"] == 1


async def test_invalid_grant_with_an_expired_token_says_to_log_in(
    home: DeveloperHome, aws: AwsStandIns, no_secret: SecretCheck
) -> None:
    """invalid_grant on an expired token: the non-retryable login error naming the refresh."""
    await home.expire_sso_token()  # the session ended too
    doc = home.read_sso_cache()
    async with _source(home) as source:
        with pytest.raises(CredentialFetchError, match="aws sso login --profile sso") as info:
            await source.fetch()
    err = info.value
    assert err.code == "SsoTokenExpired" and err.retryable is False
    assert "refreshing it failed" in str(err) and "invalid_grant" in str(err)
    cause = err.__cause__
    assert isinstance(cause, CredentialFetchError)
    assert cause.code == "invalid_grant" and cause.status == 400
    assert aws.sso.requests["CreateToken"] == 1 and aws.sso.requests["GetRoleCredentials"] == 0
    for secret in _secrets_of(doc):
        no_secret(secret, err)
        no_secret(secret, cause)
    assert home.read_sso_cache() == doc  # nothing written


async def test_oidc_5xx_with_an_expired_token_is_retryable(
    home: DeveloperHome, aws: AwsStandIns
) -> None:
    """CreateToken answering 500 (after the retries) on an expired token: a retryable error."""
    await home.expire_sso_token(session_ended=False)
    aws.faults.add(Fault("sso:CreateToken", "error", status=500))
    async with _source(home) as source:
        with pytest.raises(CredentialFetchError, match="aws sso login") as info:
            await source.fetch()
        assert info.value.retryable is True and info.value.code == "SsoTokenExpired"
        cause = info.value.__cause__
        assert isinstance(cause, CredentialFetchError) and cause.code == "server_error"
        assert aws.sso.requests["CreateToken"] == 3  # HttpSettings.attempts
        aws.faults.clear()
        assert (await source.fetch()).source == "profile:sso"  # the next fetch refreshes


async def test_failed_refresh_of_a_valid_token_uses_it_and_warns(
    near: DeveloperHome, aws: AwsStandIns, logs: list[dict[str, Any]], no_secret: SecretCheck
) -> None:
    """invalid_grant while 5 min are left: a warning, the cached token still serves."""
    aws.sso.end_sessions()
    doc = near.read_sso_cache()
    async with _source(near) as source:
        creds = await source.fetch()
        assert creds.source == "profile:sso"
        await source.fetch()  # within a minute: no second attempt
    assert aws.sso.requests["CreateToken"] == 1 and aws.sso.requests["GetRoleCredentials"] == 2
    [warning] = [e for e in logs if e["event"] == "sso.token.refresh_failed"]
    assert warning["log_level"] == "warning" and warning["code"] == "invalid_grant"
    assert near.read_sso_cache() == doc
    for secret in _secrets_of(doc):
        no_secret(secret, None)


async def test_legacy_profile_is_never_refreshed(home: DeveloperHome, aws: AwsStandIns) -> None:
    """sso_start_url in the profile: even with a registration in its cache, no CreateToken."""
    assert home.sso_login is not None
    session_doc = home.read_sso_cache()
    legacy = home.read_sso_cache(SSO_START_URL)
    registration = {k: session_doc[k] for k in REFRESH_KEYS}
    soon = (datetime.now(UTC) + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    path = home.sso_cache_file(SSO_START_URL)
    path.write_text(json.dumps(legacy | registration | {"expiresAt": soon}))
    async with _source(home, "sso-legacy") as source:
        await source.fetch()
        past = (datetime.now(UTC) - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
        path.write_text(json.dumps(legacy | registration | {"expiresAt": past}))
        with pytest.raises(CredentialFetchError, match="aws sso login --profile sso-legacy"):
            await source.fetch()
    assert aws.sso.requests["CreateToken"] == 0


@pytest.mark.parametrize("expired", [False, True])
async def test_two_concurrent_fetches_refresh_once(
    near: DeveloperHome, aws: AwsStandIns, expired: bool
) -> None:
    """Two fetches at once (token near expiry, or expired): one CreateToken, both served."""
    if expired:
        await near.expire_sso_token(session_ended=False)
    results: list[str] = []
    async with _source(near) as source:

        async def fetch() -> None:
            results.append((await source.fetch()).access_key_id)

        async with anyio.create_task_group() as tg:
            tg.start_soon(fetch)
            tg.start_soon(fetch)
    assert len(results) == 2
    assert aws.sso.requests["CreateToken"] == 1 and aws.sso.requests["GetRoleCredentials"] == 2


async def test_a_cancelled_fetch_does_not_cancel_the_refresh(
    home: DeveloperHome, aws: AwsStandIns
) -> None:
    """A caller that gives up mid-refresh: the refresh finishes and the next fetch joins it."""
    await home.expire_sso_token(session_ended=False)
    aws.faults.add(Fault("sso:CreateToken", "latency", delay=0.3))
    async with _source(home) as source:
        first = asyncio.ensure_future(source.fetch())
        with anyio.fail_after(5):
            while aws.sso.requests["CreateToken"] == 0:
                await asyncio.sleep(0.005)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        creds = await source.fetch()  # joins the refresh still under way
    assert creds.source == "profile:sso" and aws.sso.requests["CreateToken"] == 1
    assert home.read_sso_cache()["accessToken"] != home.sso_token


async def test_refresh_secrets_absent_from_logs_and_reprs(
    near: DeveloperHome, aws: AwsStandIns, logs: list[dict[str, Any]], no_secret: SecretCheck
) -> None:
    """Old and new access tokens, refresh tokens and the client secret: in no log or repr."""
    old = near.read_sso_cache()
    async with _source(near) as source:
        await source.fetch()
        shown = repr(source) + repr(source._inner) + source.describe()
    new = near.read_sso_cache()
    assert any(e["event"] == "sso.token.refreshed" for e in logs)
    for secret in _secrets_of(old) + _secrets_of(new):
        no_secret(secret, None)
        assert secret not in shown


def test_oidc_endpoint_overrides_as_botocore_resolves_them(monkeypatch: pytest.MonkeyPatch) -> None:
    """AWS_ENDPOINT_URL_SSO_OIDC, then AWS_ENDPOINT_URL, then oidc.<region>: botocore's order."""
    import botocore.session

    cases: list[dict[str, str]] = [
        {},
        {"AWS_ENDPOINT_URL": "http://127.0.0.1:1"},
        {"AWS_ENDPOINT_URL": "http://127.0.0.1:1", "AWS_ENDPOINT_URL_SSO_OIDC": "http://[::1]:2"},
    ]
    for env in cases:
        for name in [k for k in os.environ if k.startswith("AWS_")]:
            monkeypatch.delenv(name)
        for name, value in (env | {"AWS_CONFIG_FILE": os.devnull}).items():
            monkeypatch.setenv(name, value)
        client = botocore.session.Session().create_client("sso-oidc", region_name="eu-west-1")
        assert oidc_token_url("eu-west-1", env) == f"{client.meta.endpoint_url}/token", env


def test_the_botocore_rules_mirrored_here_have_not_moved() -> None:
    """botocore 1.43's refresh window, attempt interval, required keys and written keys."""
    import inspect

    from botocore.tokens import DeferredRefreshableToken, SSOTokenProvider

    from pool.sources._sso import ATTEMPT_INTERVAL_S
    from pool.sources._sso_oidc import REFRESH_WINDOW_S

    assert SSOTokenProvider._REFRESH_WINDOW == REFRESH_WINDOW_S
    assert DeferredRefreshableToken._attempt_timeout == ATTEMPT_INTERVAL_S
    required = inspect.getsource(SSOTokenProvider._refresh_access_token)
    assert all(f'"{key}"' in required for key in REFRESH_KEYS)
    written = inspect.getsource(SSOTokenProvider._attempt_create_token)
    for key in ("startUrl", "region", "accessToken", "expiresAt", *REFRESH_KEYS):
        assert f'"{key}"' in written, key


async def test_a_cache_that_cannot_be_written_still_serves_the_new_token(
    near: DeveloperHome,
    aws: AwsStandIns,
    logs: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Write-back fails (disk full, read-only home): a warning, this fetch uses the new token."""
    from pool.sources import _sso_oidc

    def full(path: str, text: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_sso_oidc, "_write_atomic", full)
    before = near.read_sso_cache()
    async with _source(near) as source:
        creds = await source.fetch()
    assert creds.source == "profile:sso" and aws.sso.requests["CreateToken"] == 1
    [warning] = [e for e in logs if e["event"] == "sso.token.cache_write_failed"]
    assert warning["reason"] == "No space left on device"
    assert near.read_sso_cache() == before


def test_the_atomic_write_leaves_no_temporary_file_when_it_fails(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """os.replace failing: the old file untouched, the mkstemp file removed."""
    from pool.sources import _sso_oidc

    target = tmp_path / "cache.json"
    target.write_text('{"old": true}')

    def boom(src: str, dst: str) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        _sso_oidc._write_atomic(str(target), '{"new": true}')
    assert [p.name for p in tmp_path.iterdir()] == ["cache.json"]
    assert target.read_text() == '{"old": true}'


async def test_an_oidc_timeout_with_an_expired_token_is_retryable(
    home: DeveloperHome, aws: AwsStandIns
) -> None:
    """CreateToken never answering (0.2 s timeout, one attempt): a retryable login error."""
    from pool.sources._http import HttpSettings
    from pool.sources._sso import SsoSource

    await home.expire_sso_token(session_ended=False)
    aws.faults.add(Fault("sso:CreateToken", "hang"))
    settings = {"sso_session": SSO_SESSION, "sso_account_id": aws.authority.account_id,
                "sso_role_name": "standin-app"}  # fmt: skip
    sessions = {SSO_SESSION: {"sso_start_url": SSO_START_URL, "sso_region": aws.region}}
    http = HttpSettings(timeout=0.2, connect_timeout=0.2, attempts=1)
    async with SsoSource(profile="sso", settings=settings, sessions=sessions,
                         environ=home.env("sso"), http=http) as source:  # fmt: skip
        with pytest.raises(CredentialFetchError, match="aws sso login") as info:
            await source.fetch()
    assert info.value.retryable is True and info.value.code == "SsoTokenExpired"
    cause = info.value.__cause__
    assert isinstance(cause, CredentialFetchError) and cause.code == "Timeout"
