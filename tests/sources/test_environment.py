"""EnvironmentSource (Lambda) and StaticSource."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pool import ConfigurationError, CredentialFetchError, Credentials, PoolClosedError
from pool.sources import EnvironmentSource, StaticSource
from pool.standins.aws import AwsStandIns

SECRET = "SECRETsecretSECRETsecret0123456789abcdef"
TOKEN = "TOKENtokenTOKENtoken-recognisable"


def _env(**extra: str) -> dict[str, str]:
    env = {"AWS_ACCESS_KEY_ID": "ASIAEXAMPLEEXAMPLE12", "AWS_SECRET_ACCESS_KEY": SECRET}
    env.update(extra)
    return env


async def test_lambda_environment_from_standin(aws: AwsStandIns) -> None:
    """The variables Lambda exports become credentials with their expiration, named 'lambda'."""
    env = aws.env_for("lambda") | {"AWS_LAMBDA_FUNCTION_NAME": "fn"}
    async with EnvironmentSource.from_env(env) as source:
        creds = await source.fetch()
    assert source.name == "lambda" and creds.source == "lambda"
    assert creds.access_key_id == env["AWS_ACCESS_KEY_ID"]
    assert creds.secret_access_key == env["AWS_SECRET_ACCESS_KEY"]
    assert creds.session_token == env["AWS_SESSION_TOKEN"]
    assert creds.expiration is not None
    assert creds.expiration.strftime("%Y-%m-%dT%H:%M:%SZ") == env["AWS_CREDENTIAL_EXPIRATION"]
    assert aws.authority.lookup(creds.access_key_id) is not None


async def test_outside_lambda_name_is_env_and_no_expiration_means_none() -> None:
    """Without AWS_LAMBDA_FUNCTION_NAME the source is 'env'; no expiration variable, none set."""
    creds = await EnvironmentSource.from_env(_env()).fetch()
    assert creds.source == "env"
    assert creds.expiration is None and creds.session_token is None


async def test_environment_is_reread_at_every_fetch() -> None:
    """A process that updates its environment is followed, as botocore does."""
    env = _env(AWS_SESSION_TOKEN=TOKEN)
    source = EnvironmentSource(environ=env)
    first = await source.fetch()
    env["AWS_ACCESS_KEY_ID"] = "ASIANEWKEYNEWKEY0001"
    second = await source.fetch()
    assert first.access_key_id != second.access_key_id == "ASIANEWKEYNEWKEY0001"


async def test_legacy_security_token_is_used_when_session_token_absent() -> None:
    """AWS_SECURITY_TOKEN is the fallback botocore reads; AWS_SESSION_TOKEN wins."""
    assert (await EnvironmentSource(environ=_env(AWS_SECURITY_TOKEN=TOKEN)).fetch()).session_token
    both = _env(AWS_SECURITY_TOKEN="legacy", AWS_SESSION_TOKEN=TOKEN)
    assert (await EnvironmentSource(environ=both).fetch()).session_token == TOKEN


@pytest.mark.parametrize(
    ("env", "missing"),
    [({}, "AWS_ACCESS_KEY_ID"), ({"AWS_ACCESS_KEY_ID": "ASIAX"}, "AWS_SECRET_ACCESS_KEY")],
)
def test_from_env_names_the_missing_variable(env: dict[str, str], missing: str) -> None:
    """A missing key id or secret is a configuration error naming the variable."""
    with pytest.raises(ConfigurationError, match=missing):
        EnvironmentSource.from_env(env)


async def test_variables_removed_later_fail_without_retry() -> None:
    """If the variables disappear, fetch fails as non-retryable, naming the variable."""
    env = _env()
    source = EnvironmentSource.from_env(env)
    del env["AWS_SECRET_ACCESS_KEY"]
    with pytest.raises(CredentialFetchError, match="AWS_SECRET_ACCESS_KEY") as info:
        await source.fetch()
    assert info.value.retryable is False


async def test_expired_expiration_is_rejected(no_secret) -> None:
    """Credentials whose AWS_CREDENTIAL_EXPIRATION has passed are refused, without secrets."""
    past = (datetime.now(UTC) - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    source = EnvironmentSource(
        environ=_env(AWS_SESSION_TOKEN=TOKEN, AWS_CREDENTIAL_EXPIRATION=past)
    )
    with pytest.raises(CredentialFetchError, match="already expired") as info:
        await source.fetch()
    assert info.value.retryable is False and info.value.code == "ExpiredOnArrival"
    no_secret(SECRET, info.value)
    no_secret(TOKEN, info.value)


async def test_malformed_expiration_is_rejected(no_secret) -> None:
    """A malformed AWS_CREDENTIAL_EXPIRATION fails as non-retryable and names the variable."""
    source = EnvironmentSource(environ=_env(AWS_CREDENTIAL_EXPIRATION="tomorrow"))
    with pytest.raises(CredentialFetchError, match="AWS_CREDENTIAL_EXPIRATION") as info:
        await source.fetch()
    assert info.value.retryable is False
    no_secret(SECRET, info.value)


async def test_fetch_logs_start_and_end_without_secrets(logs, no_secret) -> None:
    """Each fetch logs start and end with source and duration; no secret or token."""
    await EnvironmentSource(environ=_env(AWS_SESSION_TOKEN=TOKEN)).fetch()
    events = [e["event"] for e in logs]
    assert events == ["credentials.fetch.start", "credentials.fetch.end"]
    assert logs[1]["source"] == "env" and logs[1]["duration_ms"] >= 0
    no_secret(SECRET, None)
    no_secret(TOKEN, None)


async def test_closed_source_refuses_to_fetch_and_close_is_idempotent() -> None:
    """fetch() after aclose() raises PoolClosedError; aclose() twice is fine."""
    source = EnvironmentSource(environ=_env())
    async with source:
        await source.fetch()
    await source.aclose()
    with pytest.raises(PoolClosedError):
        await source.fetch()


async def test_static_source_returns_given_keys_each_time() -> None:
    """StaticSource returns the configured keys with source 'static', fresh each fetch."""
    exp = datetime.now(UTC) + timedelta(hours=1)
    source = StaticSource(
        access_key_id="AKIAEXAMPLE", secret_access_key=SECRET, session_token=TOKEN, expiration=exp
    )
    a, b = await source.fetch(), await source.fetch()
    assert a == b and a is not b
    assert a.source == "static" and a.expiration == exp and a.session_token == TOKEN


async def test_static_source_of_and_from_env() -> None:
    """StaticSource.of copies credentials; from_env snapshots the variables once."""
    creds = Credentials(access_key_id="AKIAEXAMPLE", secret_access_key=SECRET, source="vault")
    assert (await StaticSource.of(creds).fetch()).source == "vault"
    env = _env()
    source = StaticSource.from_env(env)
    env["AWS_ACCESS_KEY_ID"] = "ASIACHANGED"
    assert (await source.fetch()).access_key_id == "ASIAEXAMPLEEXAMPLE12"
    with pytest.raises(ConfigurationError, match="AWS_SECRET_ACCESS_KEY"):
        StaticSource.from_env({"AWS_ACCESS_KEY_ID": "AKIA"})


async def test_static_from_env_reads_the_variables_as_environment_source_does() -> None:
    """StaticSource.from_env reads the legacy token and the expiration like EnvironmentSource."""
    exp = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    env = _env(AWS_SECURITY_TOKEN=TOKEN, AWS_CREDENTIAL_EXPIRATION=exp.isoformat())
    static = await StaticSource.from_env(env).fetch()
    live = await EnvironmentSource(environ=env).fetch()
    assert static.session_token == live.session_token == TOKEN
    assert static.expiration == live.expiration == exp
    with pytest.raises(ConfigurationError, match="AWS_CREDENTIAL_EXPIRATION"):
        StaticSource.from_env(_env(AWS_CREDENTIAL_EXPIRATION="tomorrow"))


async def test_static_source_validates_and_expires() -> None:
    """Empty keys fail at construction; credentials past their expiration fail at fetch."""
    with pytest.raises(ConfigurationError):
        StaticSource(access_key_id="", secret_access_key=SECRET)
    source = StaticSource(
        access_key_id="AKIAEXAMPLE",
        secret_access_key=SECRET,
        expiration=datetime.now(UTC) - timedelta(seconds=1),
    )
    with pytest.raises(CredentialFetchError) as info:
        await source.fetch()
    assert info.value.retryable is False
