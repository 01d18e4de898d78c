"""Stand-ins that throttle like AWS: what real clients and the library's sources see.

boto3 and botocore block, so those tests run the stand-ins on a background
loop (``threaded_aws``); the library's own async sources use ``aws``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import aiohttp
import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.retries.standard import RetryContext, ThrottledRetryableChecker
from botocore.utils import ContainerMetadataFetcher, MetadataRetrievalError

from pool.errors import CredentialFetchError
from pool.sources import ContainerSource, InstanceMetadataSource, WebIdentitySource
from pool.standins.authority import CredentialAuthority
from pool.standins.aws import AwsStandIns
from pool.standins.mongo import MongoStandIn
from pool.standins.threaded import ThreadedStandIns
from pool.standins.throttle import (
    RateCounters,
    RateLimit,
    Throttle,
    TokenBucket,
    parse_rate_limit,
    percentile,
)
from tests.standins.mongo_fixtures import async_client, mongo_authority, mongo_clock, mongo_server

__all__ = ["mongo_authority", "mongo_clock", "mongo_server"]  # fixtures used below

NO_RETRY = Config(retries={"total_max_attempts": 1, "mode": "standard"})
FAST = {"timeout": 0.5, "connect_timeout": 0.5, "backoff": 0.0, "attempts": 1}
pytestmark = pytest.mark.usefixtures("clean_aws_env")


class Tick:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def throttled_aws(authority: CredentialAuthority) -> Iterator[AwsStandIns]:
    """The AWS group on a background loop with one call per endpoint, then throttling."""
    limits = {name: RateLimit(0.001, 1) for name in ("sts", "ecs", "eks_pod_identity", "imds")}
    with ThreadedStandIns(lambda: AwsStandIns(authority, throttle=Throttle(limits))) as runner:
        yield runner.value


@pytest.fixture
async def aws_limited(authority: CredentialAuthority) -> Any:
    """The AWS group on the test's loop, every endpoint limited to one call."""
    limits = {name: RateLimit(0.001, 1) for name in ("sts", "ecs", "eks_pod_identity", "imds")}
    async with AwsStandIns(authority, throttle=Throttle(limits)) as group:
        yield group


def test_token_bucket_burst_then_rate() -> None:
    """A full bucket admits `burst` calls at once, then `rate` per second."""
    tick = Tick()
    bucket = TokenBucket(RateLimit(2.0, 3.0), tick)
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    tick.now += 0.5
    assert [bucket.take() for _ in range(2)] == [True, False]


def test_rate_limit_specs() -> None:
    """'sts=5' means 5/s burst 5; 'ecs=40:60' is the ECS agent's default; junk is refused."""
    assert parse_rate_limit("sts=5") == ("sts", RateLimit(5.0, 5.0))
    assert parse_rate_limit("ecs=40:60") == ("ecs", RateLimit(40.0, 60.0))
    assert parse_rate_limit("sts:AssumeRole=0.5") == ("sts:AssumeRole", RateLimit(0.5, 1.0))
    with pytest.raises(ValueError, match="TARGET"):
        parse_rate_limit("sts")


def test_counters_per_second_and_percentile() -> None:
    """Calls are counted per wall-clock second; the percentile can count idle seconds as 0."""
    tick = Tick()
    throttle = Throttle({"sts": RateLimit(1.0, 1.0)}, clock=tick, counter_clock=tick)
    assert throttle.admit("sts", "AssumeRole") and not throttle.admit("sts", "AssumeRole")
    tick.now += 1
    assert throttle.admit("ecs", "credentials")
    assert throttle.calls.per_second("sts") == {1000: 2}
    assert throttle.throttled.per_second("sts:AssumeRole") == {1000: 1}
    assert throttle.calls.total("ecs") == 1
    counters = RateCounters(tick)
    counters.record("auth", 3)
    assert percentile(counters.per_second("auth"), 50, span=range(1000, 1004)) == 0.0
    assert percentile(counters.per_second("auth"), 100) == 3.0


def test_boto3_sees_sts_throttling_as_botocore_classifies_it(throttled_aws: AwsStandIns) -> None:
    """boto3 gets STS's throttling error (HTTP 400 Sender/Throttling); botocore: throttled."""
    creds = throttled_aws.authority.mint()
    client = boto3.Session(
        aws_access_key_id=creds.access_key_id,
        aws_secret_access_key=creds.secret_access_key,
        aws_session_token=creds.session_token,
        region_name="us-east-1",
    ).client("sts", endpoint_url=throttled_aws.sts_url, config=NO_RETRY)
    client.get_caller_identity()
    with pytest.raises(ClientError) as info:
        client.get_caller_identity()
    err = info.value.response
    assert err["Error"] == {"Type": "Sender", "Code": "Throttling", "Message": "Rate exceeded"}
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 400
    context = RetryContext(attempt_number=1, parsed_response=err)
    assert ThrottledRetryableChecker().is_retryable(context)


def test_botocore_container_fetcher_sees_the_ecs_agents_429(throttled_aws: AwsStandIns) -> None:
    """botocore's container fetcher reads the ECS agent's tollbooth 429 text, as on ECS."""
    fetcher = ContainerMetadataFetcher(sleep=lambda _s: None)
    headers = {"Authorization": throttled_aws.ecs_auth_token}
    assert fetcher.retrieve_full_uri(throttled_aws.ecs_full_uri, headers)["AccessKeyId"]
    with pytest.raises(MetadataRetrievalError) as info:
        fetcher.retrieve_full_uri(throttled_aws.ecs_full_uri, headers)
    assert "429" in str(info.value) and "You have reached maximum request limit." in str(info.value)


async def test_raw_answers_of_ecs_pod_identity_and_imds(aws_limited: AwsStandIns) -> None:
    """Over the limit: ECS 429 text/plain tollbooth body, Pod Identity Go's 429, IMDS 429."""
    async with aiohttp.ClientSession() as http:
        ecs = {"Authorization": aws_limited.ecs_auth_token}
        pod = {"Authorization": aws_limited.pod_identity_token}
        for url, headers, body in (
            (aws_limited.ecs_full_uri, ecs, "You have reached maximum request limit."),
            (aws_limited.pod_identity_full_uri, pod, "Too Many Requests\n"),
        ):
            async with http.get(url, headers=headers) as first:
                assert first.status == 200
            async with http.get(url, headers=headers) as second:
                assert second.status == 429 and await second.text() == body
                assert second.content_type == "text/plain"
        put = {"X-aws-ec2-metadata-token-ttl-seconds": "60"}
        async with http.put(aws_limited.imds_url + "/latest/api/token", headers=put) as first:
            assert first.status == 200
        async with http.put(aws_limited.imds_url + "/latest/api/token", headers=put) as second:
            assert second.status == 429
    assert aws_limited.throttle.throttled.total("imds") == 1


async def test_library_sources_report_throttled_retryable(aws_limited: AwsStandIns) -> None:
    """Each source turns a throttled answer into a retryable CredentialFetchError.throttled."""
    sources = [
        WebIdentitySource.from_env(aws_limited.env_for("eks_irsa"), **FAST),
        ContainerSource.from_env(aws_limited.env_for("ecs"), **FAST),
        ContainerSource.from_env(aws_limited.env_for("eks_pod_identity"), **FAST),
        InstanceMetadataSource.from_env(aws_limited.env_for("ec2"), **FAST),
    ]
    for source in sources:
        async with source:
            if not isinstance(source, InstanceMetadataSource):
                await source.fetch()  # the one call the bucket allows
            with pytest.raises(CredentialFetchError) as info:
                await source.fetch()
        assert info.value.retryable and info.value.throttled, source.name


async def test_mongo_counts_connections_sasl_starts_and_auths(
    mongo_server: MongoStandIn, mongo_authority: CredentialAuthority
) -> None:
    """The MongoDB stand-in counts per second new connections, saslStart and successful auths."""
    creds = mongo_authority.mint()
    async with async_client(mongo_server, creds) as client:
        await client.admin.command("ping")
    rates = mongo_server.stats.rates
    assert rates.total("auth") == mongo_server.stats.auth_successes >= 1
    assert rates.total("saslStart") >= rates.total("auth")
    assert rates.total("connections") == mongo_server.stats.connections_opened
    assert "per_second" in mongo_server.stats.snapshot()


def test_rate_counters_merge_members() -> None:
    """A cluster's counters are the per-second sums of its members' (MongoCluster.stats)."""
    tick = Tick()
    a, b = RateCounters(tick), RateCounters(tick)
    a.record("auth", 2)
    b.record("auth")
    tick.now += 1
    b.record("connections")
    total = RateCounters.merged([a, b])
    assert total.per_second("auth") == {1000: 3}
    assert total.per_second("connections") == {1001: 1}
