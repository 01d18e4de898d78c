"""With the root logger at DEBUG, no record of any logger carries a credential.

The real flows run against the stand-ins: every source (environment, web
identity, ECS, EKS Pod Identity, IMDS, AssumeRole, every kind of shared-config
profile: static, SSO, credential_process, chained, web, EC2 role), boto3's STS client in the
same process, a pool start (PyMongo signs MONGODB-AWS through botocore), a
forced rotation, a refused authentication and a refused AssumeRole. A handler
on the root logger formats
each record fully (message, args, exception, stack, every attribute) and no
minted secret key, session token, web identity token, container token or
external id may appear in any of them.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from pool import ClientPool, CredentialCache, Credentials
from pool._internal import scrub
from pool.errors import PoolError
from pool.sources import from_environment
from pool.sources.assume_role import AssumeRoleSource
from pool.sources.profile import ProfileSource
from pool.sources.static import StaticSource
from pool.standins.authority import CredentialAuthority
from pool.standins.aws import ENVIRONMENTS, AwsStandIns
from pool.standins.laptop import DeveloperHome
from pool.standins.mongo.server import MongoStandIn
from tests.client_pool.pool_helpers import FAST, MintingSource, until

EXTERNAL_ID = "ext-Id-7f3a91c2d4e5"


class FullRecords(logging.Handler):
    """Every record, formatted with everything a handler could ever show."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[tuple[str, str]] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        parts = [self.format(record), repr(record.msg), repr(record.args)]
        if record.exc_info:
            parts.append("".join(traceback.format_exception(*record.exc_info)))
        parts += [str(record.exc_text), str(record.stack_info), repr(record.__dict__)]
        self.texts.append((record.name, "\n".join(parts)))


@pytest.fixture
def every_record() -> Iterator[FullRecords]:
    """The root logger at DEBUG with a handler capturing every record of the process."""
    root = logging.getLogger()
    handler = FullRecords()
    saved = root.level, {n: logging.getLogger(n).level for n in ("pool", "botocore")}
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    for name in saved[1]:
        logging.getLogger(name).setLevel(logging.NOTSET)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(saved[0])
        for name, level in saved[1].items():
            logging.getLogger(name).setLevel(level)


class Recording:
    """A source wrapper remembering every credential set it handed out."""

    def __init__(self, inner: Any, seen: list[Credentials]) -> None:
        self.inner, self.seen, self.name = inner, seen, getattr(inner, "name", "recording")

    async def fetch(self) -> Credentials:
        creds: Credentials = await self.inner.fetch()
        self.seen.append(creds)
        return creds

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.fixture
async def stand_ins() -> AsyncIterator[tuple[AwsStandIns, MongoStandIn]]:
    authority = CredentialAuthority(default_lifetime=3600.0)
    async with AwsStandIns(authority) as aws, MongoStandIn(authority) as mongo:
        await aws.rotate_web_identity_token()
        yield aws, mongo


async def _every_source(aws: AwsStandIns, seen: list[Credentials]) -> None:
    for environment in ENVIRONMENTS:
        async with from_environment(aws.env_for(environment)) as source:
            seen.append(await source.fetch())
    base = StaticSource.of(seen[0])
    async with AssumeRoleSource(
        base, role_arn=aws.role_arn, external_id=EXTERNAL_ID, endpoint_url=aws.sts_url
    ) as chained:
        seen.append(await chained.fetch())
    # A refused AssumeRole: botocore logs the request parameters and the error body.
    aws.authority.revoke(seen[0].access_key_id)
    async with AssumeRoleSource(
        base, role_arn=aws.role_arn, external_id=EXTERNAL_ID, endpoint_url=aws.sts_url, attempts=1
    ) as refused:
        with pytest.raises(PoolError):
            await refused.fetch()


PROFILES = ("static", "sso", "sso-legacy", "process", "chained", "chained-twice", "web", "ec2-role")


async def _every_profile(aws: AwsStandIns, seen: list[Credentials]) -> list[str]:
    """Every kind of ~/.aws profile (SSO, credential_process, chains...): returns its secrets.

    The sso-session token has 5 minutes left, so it is refreshed (OIDC CreateToken).
    """
    async with DeveloperHome(aws, sso_token_lifetime=300) as home:
        login = home.sso_login
        assert login is not None
        for profile in PROFILES:
            async with ProfileSource(environ=home.env(profile)) as source:
                seen.append(await source.fetch())
        assert aws.sso.requests["CreateToken"] == 1
        refreshed = home.read_sso_cache()
        return [home.sso_token, home.legacy_sso_token, home.long_term_key.secret_access_key,
                login.refresh_token, login.client_secret, refreshed["accessToken"],
                refreshed["refreshToken"]]  # fmt: skip


def _botocore_flows(aws: AwsStandIns, base: Credentials) -> list[str]:
    """boto3's STS client in the same process (as PyMongo's own AWS lookup uses botocore):
    botocore.endpoint logs the parameters, botocore.parsers the bodies. Returns the secrets."""
    import boto3
    from botocore.config import Config

    config = Config(retries={"max_attempts": 1})
    unsigned = boto3.Session(region_name="us-east-1").client(
        "sts", endpoint_url=aws.sts_url, config=config
    )
    web = unsigned.assume_role_with_web_identity(
        RoleArn=aws.role_arn, RoleSessionName="boto", WebIdentityToken=aws.web_identity_token
    )["Credentials"]
    signed = boto3.Session(
        aws_access_key_id=base.access_key_id,
        aws_secret_access_key=base.secret_access_key,
        aws_session_token=base.session_token,
        region_name="us-east-1",
    ).client("sts", endpoint_url=aws.sts_url, config=config)
    chained = signed.assume_role(
        RoleArn=aws.role_arn, RoleSessionName="boto-chain", ExternalId=EXTERNAL_ID
    )["Credentials"]
    return [c[k] for c in (web, chained) for k in ("SecretAccessKey", "SessionToken")]


async def _pool_life(aws: AwsStandIns, mongo: MongoStandIn, seen: list[Credentials]) -> None:
    minting = MintingSource(aws.authority, lifetime=3600.0)  # a new set on every fetch
    async with (
        CredentialCache(Recording(minting, seen)) as cache,
        ClientPool(
            mongo.uri, credentials=cache, driver="pymongo", warmup_timeout=2.0, **FAST
        ) as cp,
    ):
        await cp.run(lambda c: c.admin.command("ping"))
        generation = cp.status().generation
        await cache.refresh()  # a forced rotation
        await cp.wait_for_generation(generation + 1)
        await cp.run(lambda c: c.admin.command("ping"))
        mongo.reject_auth(True)  # the server refuses the next set
        await cache.refresh()
        await until(lambda: cp.status().warmup_failures >= 1)
        mongo.drop_connections()
        with pytest.raises(Exception, match=r"Authentication failed|paused"):
            async with cp.client() as client:
                await client.db.t.find_one({})
        mongo.reject_auth(False)


async def test_no_credential_in_any_record_at_debug(
    stand_ins: tuple[AwsStandIns, MongoStandIn], every_record: FullRecords
) -> None:
    """Every source, a pool's start, rotation and auth failures: no secret in any record."""
    aws, mongo = stand_ins
    seen: list[Credentials] = []
    await _every_source(aws, seen)
    profile_secrets = await _every_profile(aws, seen)
    boto_secrets = await asyncio.to_thread(_botocore_flows, aws, seen[1])
    await _pool_life(aws, mongo, seen)
    secrets = [aws.ecs_auth_token, aws.pod_identity_token, aws.web_identity_token, EXTERNAL_ID]
    secrets += boto_secrets + profile_secrets
    assert all(secrets), "every token the flows used is known to the test"
    for creds in seen:
        secrets += [
            creds.secret_access_key,
            *([creds.session_token] if creds.session_token else []),
        ]
    assert len(seen) >= 9 + len(PROFILES)
    names = {name for name, _ in every_record.texts}
    # The flows went through the loggers known to print credentials.
    assert {"botocore.auth", "botocore.endpoint", "botocore.parsers"} <= names, names
    assert any(
        "x-amz-security-token:***" in t for n, t in every_record.texts if n == "botocore.auth"
    )
    for name, text in every_record.texts:
        for secret in secrets:
            assert secret not in text, f"a secret in a record of {name!r}"


def test_scrubber_can_be_turned_off_and_on() -> None:
    """set_log_scrubbing(False) leaves records untouched; True scrubs them again."""
    secret = "opt-out-Secret-9f8e7d6c5b4a"
    scrub.register_secret(secret)
    logger = logging.getLogger("tests.scrub")
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        scrub.set_log_scrubbing(False)
        logger.debug("value %s", secret)
        scrub.set_log_scrubbing(True)
        logger.debug("value %s", secret)
    finally:
        logger.removeHandler(handler)
        scrub.set_log_scrubbing(True)
    assert [r.getMessage() for r in records] == [f"value {secret}", "value ***"]


def test_recognised_shapes_are_scrubbed_without_registration() -> None:
    """Credential fields (header, dict repr, XML, query, JWT) are masked even if never seen."""
    text = scrub.scrub(
        "x-amz-security-token:FQoGZXIvYXdzEXAMPLE\n"
        "{'X-Amz-Security-Token': b'FQoGZXIvYXdzEXAMPLE2'} "
        "<SecretAccessKey>wJalrXUtnFEMI/K7MDENG</SecretAccessKey> "
        "WebIdentityToken=abcdefgh12345&RoleArn=arn:aws:iam::123456789012:role/app "
        "Authorization: Bearer s3cr3t-t0ken eyJhbGciOiJSUzI1.eyJzdWIiOiJhcHAi.c2ln"
    )
    for leaked in ("FQoGZXIvYXdzEXAMPLE", "wJalrXUtnFEMI", "abcdefgh12345", "s3cr3t", "eyJzdWIi"):
        assert leaked not in text
    assert "RoleArn=arn:aws:iam::123456789012:role/app" in text


def test_the_registry_is_bounded() -> None:
    """Old secrets are forgotten past MAX_SECRETS (memory stays bounded)."""
    for i in range(scrub.MAX_SECRETS + 10):
        scrub.register_secret(f"bounded-secret-{i:06d}")
    assert len(scrub._secrets) <= scrub.MAX_SECRETS


def test_records_from_other_threads_are_scrubbed_while_secrets_register() -> None:
    """Registering on one thread while others log never breaks or withholds a record."""
    import threading

    logger = logging.getLogger("tests.scrub.threads")
    texts: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            texts.append(record.getMessage())

    handler = Keep()
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    secret = "threaded-Secret-0a1b2c3d4e"
    scrub.register_secret(secret)
    stop = threading.Event()

    def register() -> None:  # 100 values churning: within the bound, the secret stays known
        i = 0
        while not stop.is_set():
            scrub.register_secret(f"churn-secret-{i % 100:08d}")
            i += 1

    churn = threading.Thread(target=register)
    churn.start()
    try:
        for _ in range(2000):
            logger.debug("value %s", secret)
    finally:
        stop.set()
        churn.join()
        logger.removeHandler(handler)
    assert texts == ["value ***"] * 2000
