"""ProfileSource: each kind of shared-config profile against the stand-ins, in a temporary HOME.

Every test passes an explicit environment with HOME, AWS_CONFIG_FILE and
AWS_SHARED_CREDENTIALS_FILE pointing into the temporary home: the real ~/.aws
is never read.
"""

from __future__ import annotations

import subprocess

import pytest

from pool import ConfigurationError, CredentialFetchError, NoCredentialsFoundError
from pool.sources.profile import ProfileSource
from pool.standins.aws import AwsStandIns
from pool.standins.credential_process import PLANTED
from pool.standins.laptop import DeveloperHome

FAST = {"timeout": 0.5, "connect_timeout": 0.5, "backoff": 0.0}


def _source(home: DeveloperHome, profile: str, **kw: object) -> ProfileSource:
    return ProfileSource(environ=home.env(profile), **kw)  # type: ignore[arg-type]


async def test_static_keys_from_the_credentials_file(home: DeveloperHome) -> None:
    """A [static] profile in the credentials file gives its long-term key, no expiry."""
    async with _source(home, "static") as source:
        creds = await source.fetch()
    assert creds.access_key_id == home.long_term_key.access_key_id
    assert creds.expiration is None and creds.source == "profile:static"
    assert str(home.credentials_file) in source.describe()


async def test_credential_process_with_expiration(home: DeveloperHome, aws: AwsStandIns) -> None:
    """credential_process output with Expiration: those credentials, that exact expiry."""
    async with _source(home, "process") as source:
        first = await source.fetch()
        second = await source.fetch()
    issued = aws.authority.lookup(first.access_key_id)
    assert issued is not None and first.expiration == issued.expiration
    assert second.access_key_id != first.access_key_id or aws.ecs.requests["credentials"] == 2
    assert "credential_process" in source.describe()


async def test_credential_process_without_expiration(home: DeveloperHome) -> None:
    """credential_process output without Expiration: credentials that never expire."""
    async with _source(home, "process-no-expiry") as source:
        creds = await source.fetch()
    assert creds.expiration is None and creds.session_token


async def test_credential_process_that_hangs_is_killed(home: DeveloperHome) -> None:
    """A helper that never finishes fails after process_timeout, retryable, and is killed."""
    async with _source(home, "process-hang", process_timeout=0.5) as source:
        with pytest.raises(CredentialFetchError, match="did not finish") as info:
            await source.fetch()
    assert info.value.retryable is True and info.value.code == "ProcessTimeout"


async def test_credential_process_exit_status_and_stderr_redacted(
    home: DeveloperHome, no_secret
) -> None:
    """A non-zero exit quotes stderr without the secret it printed."""
    async with _source(home, "process-fail") as source:
        with pytest.raises(CredentialFetchError, match="exited with status 3") as info:
            await source.fetch()
    assert "vault is locked" in str(info.value) and info.value.retryable is False
    no_secret(PLANTED, info.value)


async def test_credential_process_garbage(home: DeveloperHome) -> None:
    """Output that is not the JSON format is an error that does not quote the output."""
    async with _source(home, "process-garbage") as source:
        with pytest.raises(CredentialFetchError, match="not JSON") as info:
            await source.fetch()
    assert "passphrase" not in str(info.value) and info.value.code == "BadOutput"


@pytest.mark.parametrize("profile", ["sso", "sso-legacy"])
async def test_sso_profile_trades_the_cached_token(
    home: DeveloperHome, aws: AwsStandIns, profile: str
) -> None:
    """SSO profiles (sso-session and legacy) use the cached token; credentials rotate per fetch."""
    async with _source(home, profile) as source:
        first = await source.fetch()
        second = await source.fetch()
    issued = aws.authority.lookup(first.access_key_id)
    assert issued is not None and issued.role_arn == aws.role_arn
    assert first.expiration == issued.expiration
    assert first.access_key_id != second.access_key_id
    assert aws.sso.requests["GetRoleCredentials"] == 2


async def test_expired_sso_token_says_to_log_in(home: DeveloperHome, aws: AwsStandIns) -> None:
    """An expired token whose session ended: the refresh is refused, the error says to log in."""
    await home.expire_sso_token()
    async with _source(home, "sso") as source:
        with pytest.raises(CredentialFetchError, match="aws sso login --profile sso") as info:
            await source.fetch()
    assert info.value.retryable is False and info.value.code == "SsoTokenExpired"
    assert aws.sso.requests["GetRoleCredentials"] == 0
    assert aws.sso.requests["CreateToken"] == 1


async def test_revoked_sso_token_says_to_log_in(home: DeveloperHome, aws: AwsStandIns) -> None:
    """A token the portal refuses (401) says to log in again; a new login fixes it."""
    aws.sso.revoke_all()
    async with _source(home, "sso") as source:
        with pytest.raises(CredentialFetchError, match="aws sso login --profile sso"):
            await source.fetch()
        await home.login()
        assert (await source.fetch()).source == "profile:sso"


async def test_role_chain_two_deep(home: DeveloperHome, aws: AwsStandIns) -> None:
    """role_arn over role_arn over static keys: two AssumeRole calls, the last role's keys."""
    async with _source(home, "chained-twice") as source:
        creds = await source.fetch()
    issued = aws.authority.lookup(creds.access_key_id)
    assert issued is not None and issued.role_arn == home.chained_twice_role_arn
    assert creds.expiration == issued.expiration
    assert aws.sts.requests["AssumeRole"] == 2
    assert home.chained_role_arn in source.describe()


async def test_role_with_web_identity_token_file(home: DeveloperHome, aws: AwsStandIns) -> None:
    """role_arn + web_identity_token_file in a profile: AssumeRoleWithWebIdentity."""
    async with _source(home, "web") as source:
        creds = await source.fetch()
    issued = aws.authority.lookup(creds.access_key_id)
    assert issued is not None and issued.role_arn == aws.role_arn
    assert aws.sts.requests["AssumeRoleWithWebIdentity"] == 1


async def test_role_with_credential_source_ec2(home: DeveloperHome, aws: AwsStandIns) -> None:
    """credential_source = Ec2InstanceMetadata signs AssumeRole with the instance's keys."""
    async with _source(home, "ec2-role") as source:
        creds = await source.fetch()
    issued = aws.authority.lookup(creds.access_key_id)
    assert issued is not None and issued.role_arn == home.chained_role_arn
    assert aws.imds.requests and aws.sts.requests["AssumeRole"] == 1


async def test_unknown_profile_names_the_files(home: DeveloperHome) -> None:
    """An explicit unknown profile fails naming the files and the profiles found."""
    async with _source(home, "nope") as source:
        with pytest.raises(ConfigurationError, match="'nope' is not in") as info:
            await source.fetch()
    assert str(home.config_file) in str(info.value) and "static" in str(info.value)


async def test_explicit_profile_never_falls_back(home: DeveloperHome) -> None:
    """AWS_PROFILE naming an empty profile fails even though other sources exist."""
    env = home.env("empty") | {"AWS_ACCESS_KEY_ID": "ASIAX", "AWS_SECRET_ACCESS_KEY": "y"}
    async with ProfileSource(environ=env) as source:
        with pytest.raises(ConfigurationError, match="holds no credentials"):
            await source.fetch()
    with pytest.raises(ConfigurationError, match="never falls back"):
        ProfileSource("static", environ=env, fallback=ProfileSource(environ=env))


async def test_missing_files_and_no_fallback(home: DeveloperHome, tmp_path) -> None:
    """No shared files and an implicit default profile: NoCredentialsFoundError."""
    env = {"HOME": str(tmp_path), "AWS_CONFIG_FILE": str(tmp_path / "none"),
           "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none2")}  # fmt: skip
    async with ProfileSource(environ=env) as source:
        with pytest.raises(NoCredentialsFoundError):
            await source.fetch()


async def test_malformed_config_file(home: DeveloperHome, no_secret) -> None:
    """A config file that does not parse is a ConfigurationError that quotes no line."""
    home.config_file.write_text("[profile x\naws_secret_access_key = PLANTEDSECRET\n")
    async with _source(home, "static") as source:
        with pytest.raises(ConfigurationError, match="not a valid AWS config file") as info:
            await source.fetch()
    no_secret("PLANTEDSECRET", info.value)


async def test_source_profile_loop_is_refused(home: DeveloperHome) -> None:
    """Profiles naming each other as source_profile are refused, not followed forever."""
    role = "arn:aws:iam::123456789012:role/x"
    home.config_file.write_text(
        f"[profile a]\nrole_arn = {role}\nsource_profile = b\n"
        f"[profile b]\nrole_arn = {role}\nsource_profile = a\n"
    )
    async with _source(home, "a") as source:
        with pytest.raises(ConfigurationError, match="loop"):
            await source.fetch()


async def test_mfa_profile_is_refused_with_a_way_out(home: DeveloperHome) -> None:
    """A role profile with mfa_serial is refused: a service cannot type the code."""
    home.config_file.write_text(
        "[profile m]\nrole_arn = arn:aws:iam::123456789012:role/x\nsource_profile = static\n"
        "mfa_serial = arn:aws:iam::123456789012:mfa/me\n"
    )
    async with _source(home, "m") as source:
        with pytest.raises(ConfigurationError, match="MFA"):
            await source.fetch()


async def test_profile_region_picks_the_regional_sts_endpoint(home: DeveloperHome) -> None:
    """Without an endpoint override, a role profile's region chooses the regional STS host."""
    home.config_file.write_text(
        "[profile r]\nrole_arn = arn:aws:iam::123456789012:role/x\nsource_profile = static\n"
        "region = eu-central-1\n"
    )
    dropped = ("AWS_ENDPOINT_URL_STS", "AWS_DEFAULT_REGION", "AWS_REGION")
    env = {k: v for k, v in home.env("r").items() if k not in dropped}
    source = ProfileSource(environ=env)
    inner = await source._resolved()
    assert inner.sts.url == "https://sts.eu-central-1.amazonaws.com/"  # type: ignore[attr-defined]
    await source.aclose()


async def test_cancelled_fetch_kills_the_helper(
    home: DeveloperHome, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fetch cancelled (asyncio.timeout) while the helper hangs kills it and returns at once."""
    import asyncio

    from pool.sources._process import CredentialProcessSource

    started: list[subprocess.Popen[bytes]] = []
    original = CredentialProcessSource._start

    def spy(self: CredentialProcessSource) -> subprocess.Popen[bytes]:
        started.append(original(self))
        return started[-1]

    monkeypatch.setattr(CredentialProcessSource, "_start", spy)
    async with _source(home, "process-hang", process_timeout=30.0) as source:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.5):
                await source.fetch()
    assert len(started) == 1 and started[0].returncode is not None  # killed and reaped


async def test_files_are_parsed_off_the_loop_once(
    home: DeveloperHome, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shared files are parsed in a worker thread, once per source, not per fetch."""
    import threading

    from pool.sources import _shared_config

    threads: list[threading.Thread] = []
    original = _shared_config._load

    def spy(*args: object) -> object:
        threads.append(threading.current_thread())
        return original(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(_shared_config, "_load", spy)
    async with _source(home, "sso") as source:
        await source.fetch()
        await source.fetch()
    assert len(threads) == 1 and threads[0] is not threading.main_thread()


async def test_fetch_cancelled_while_the_helper_starts_kills_it(
    home: DeveloperHome, monkeypatch: pytest.MonkeyPatch
) -> None:
    """task.cancel() while Popen runs in its thread: the helper it then starts is killed."""
    import asyncio
    import threading

    import anyio

    from pool.sources._process import CredentialProcessSource

    entered, gate = threading.Event(), threading.Event()
    started: list[subprocess.Popen[bytes]] = []
    original = CredentialProcessSource._start

    def slow_start(self: CredentialProcessSource) -> subprocess.Popen[bytes]:
        entered.set()
        gate.wait(10)
        started.append(original(self))
        return started[-1]

    monkeypatch.setattr(CredentialProcessSource, "_start", slow_start)
    async with _source(home, "process-hang", process_timeout=30.0) as source:
        task = asyncio.create_task(source.fetch())
        await anyio.to_thread.run_sync(entered.wait)
        task.cancel()
        gate.set()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert len(started) == 1 and started[0].returncode is not None  # killed and reaped
