"""AssumeRoleSource (role chaining) against the STS stand-in."""

from __future__ import annotations

import anyio
import pytest

from pool import ConfigurationError, CredentialFetchError, Credentials
from pool.sources import AssumeRoleSource, ContainerSource, StaticSource
from pool.standins.aws import AwsStandIns
from pool.standins.faults import FaultInjector

TARGET = "arn:aws:iam::222233334444:role/atlas-reader"


@pytest.fixture(autouse=True)
def _target_role_exists(aws: AwsStandIns) -> None:
    """STS (and its stand-in) assume only roles that exist: register the target role."""
    aws.authority.configure_role(TARGET)


FAST = {"timeout": 0.5, "connect_timeout": 0.5, "backoff": 0.0}


class CountingSource:
    """A plain CredentialSource (no base class) handing out fresh STS credentials each time."""

    name = "counting"

    def __init__(self, aws: AwsStandIns) -> None:
        self.aws = aws
        self.calls = 0
        self.closed = False

    async def fetch(self) -> Credentials:
        self.calls += 1
        issued = self.aws.authority.mint(session_name=f"base-{self.calls}")
        return Credentials(
            access_key_id=issued.access_key_id,
            secret_access_key=issued.secret_access_key,
            session_token=issued.session_token,
            expiration=issued.expiration,
            source=self.name,
        )

    async def aclose(self) -> None:
        self.closed = True


def _source(aws: AwsStandIns, base: object, **kw: object) -> AssumeRoleSource:
    return AssumeRoleSource(base, role_arn=TARGET, endpoint_url=aws.sts_url, **kw)  # type: ignore[arg-type]


async def test_chains_from_a_container_source(aws: AwsStandIns) -> None:
    """ECS task credentials sign AssumeRole; the result is the target role's credentials."""
    base = ContainerSource.from_env(aws.env_for("ecs"))
    async with _source(aws, base, session_name="chain") as source:
        creds = await source.fetch()
    issued = aws.authority.lookup(creds.access_key_id)
    assert issued is not None and issued.role_arn == TARGET and issued.session_name == "chain"
    assert creds.source == "assume_role" and creds.session_token == issued.session_token
    assert base.closed  # owned by default


async def test_base_is_asked_every_fetch_and_one_client_signs_all(aws: AwsStandIns) -> None:
    """Each fetch signs with the base's current credentials; one STS client serves them all."""
    base = CountingSource(aws)
    async with _source(aws, base) as source:
        keys = {(await source.fetch()).access_key_id for _ in range(3)}
        assert source.sts.clients_created == 1
    assert base.calls == 3 and len(keys) == 3 and base.closed


async def test_concurrent_fetches_sign_with_their_own_base_credentials(aws: AwsStandIns) -> None:
    """Concurrent fetches with different base credentials do not mix them up."""
    base = CountingSource(aws)
    results: list[Credentials] = []

    async def one(source: AssumeRoleSource) -> None:
        results.append(await source.fetch())

    async with _source(aws, base) as source:
        async with anyio.create_task_group() as tg:
            for _ in range(5):
                tg.start_soon(one, source)
    assert len(results) == 5 and base.calls == 5
    assert aws.sts.requests["AssumeRole"] == 5


async def test_base_with_get_is_used_through_get(aws: AwsStandIns) -> None:
    """A cache-like base (async get(), no fetch()) is read through get()."""
    inner = CountingSource(aws)

    class CacheLike:
        async def get(self) -> Credentials:
            return await inner.fetch()

    async with _source(aws, CacheLike(), owns_base=False) as source:
        await source.fetch()
    assert inner.calls == 1


async def test_owns_base_false_leaves_base_open(aws: AwsStandIns) -> None:
    """With owns_base=False, aclose() does not close a shared base."""
    base = CountingSource(aws)
    async with _source(aws, base, owns_base=False) as source:
        await source.fetch()
    assert not base.closed


async def test_external_id_is_sent(aws: AwsStandIns) -> None:
    """A role requiring an ExternalId: refused without it (non-retryable), accepted with it."""
    aws.authority.configure_role(TARGET, external_id="tenant-42")
    async with _source(aws, CountingSource(aws)) as source:
        with pytest.raises(CredentialFetchError, match="AccessDenied") as info:
            await source.fetch()
    assert info.value.retryable is False and info.value.status == 403
    async with _source(aws, CountingSource(aws), external_id="tenant-42") as source:
        assert (await source.fetch()).source == "assume_role"


async def test_unknown_base_keys_fail_without_leaking_them(aws: AwsStandIns, no_secret) -> None:
    """Base keys STS does not know: InvalidClientTokenId, non-retryable, secret not shown."""
    secret = "PLANTEDsecretPLANTEDsecretPLANTEDsecret0"
    token = "PLANTED-session-token-value"
    base = StaticSource(
        access_key_id="ASIAUNKNOWNUNKNOWN01", secret_access_key=secret, session_token=token
    )
    async with _source(aws, base) as source:
        with pytest.raises(CredentialFetchError, match="InvalidClientTokenId") as info:
            await source.fetch()
    assert info.value.retryable is False
    no_secret(secret, info.value)
    no_secret(token, info.value)


async def test_base_failure_keeps_its_classification(
    aws: AwsStandIns, faults: FaultInjector
) -> None:
    """A retryable base failure surfaces as retryable, naming the chain; STS is not called."""
    faults.add("ecs:error=503")
    base = ContainerSource.from_env(aws.env_for("ecs"), attempts=1, **FAST)
    async with _source(aws, base, attempts=3) as source:
        with pytest.raises(CredentialFetchError, match="base source failed") as info:
            await source.fetch()
    assert info.value.retryable is True and info.value.status == 503
    assert aws.ecs.requests["credentials"] == 1  # no nested retry loops
    assert aws.sts.requests["AssumeRole"] == 0


async def test_throttling_retried_and_bounded(aws: AwsStandIns, faults: FaultInjector) -> None:
    """STS Throttling on AssumeRole is retried up to `attempts`, then raised as retryable."""
    faults.add("sts:AssumeRole:throttle")
    async with _source(aws, CountingSource(aws), attempts=2, **FAST) as source:
        with pytest.raises(CredentialFetchError, match="Throttling") as info:
            await source.fetch()
    assert info.value.retryable is True
    assert aws.sts.requests["AssumeRole"] == 2


async def test_chaining_duration_over_one_hour_is_rejected(aws: AwsStandIns) -> None:
    """Role chaining caps sessions at 1 h: STS's ValidationError is non-retryable."""
    async with _source(aws, CountingSource(aws), duration_seconds=7200) as source:
        with pytest.raises(CredentialFetchError, match="ValidationError") as info:
            await source.fetch()
    assert info.value.retryable is False


async def test_construction_checks(aws: AwsStandIns) -> None:
    """The base must be a source or cache-like; the role ARN and duration are validated."""
    with pytest.raises(TypeError):
        AssumeRoleSource(object(), role_arn=TARGET)
    with pytest.raises(ConfigurationError):
        AssumeRoleSource(CountingSource(aws), role_arn="not-an-arn")
    with pytest.raises(ConfigurationError):
        AssumeRoleSource(CountingSource(aws), role_arn=TARGET, duration_seconds=100)


async def test_from_env_detects_the_base(aws: AwsStandIns) -> None:
    """from_env picks the base from the environment and STS from AWS_ENDPOINT_URL_STS."""
    env = aws.env_for("ecs") | {"AWS_ENDPOINT_URL_STS": aws.sts_url}
    async with AssumeRoleSource.from_env(env, role_arn=TARGET) as source:
        assert isinstance(source.base, ContainerSource)
        creds = await source.fetch()
    issued = aws.authority.lookup(creds.access_key_id)
    assert issued is not None and issued.role_arn == TARGET
