"""botocore's and aiobotocore's own credential providers against every endpoint.

botocore blocks, so its tests use ``threaded_aws`` (stand-ins on a background
loop); aiobotocore's run on the test's loop against ``aws``.
"""

from __future__ import annotations

from typing import Any

import botocore.session
import pytest
from aiobotocore.credentials import AioContainerProvider, AioInstanceMetadataProvider
from aiobotocore.session import AioSession
from aiobotocore.utils import AioContainerMetadataFetcher, AioInstanceMetadataFetcher
from botocore.credentials import ContainerProvider, InstanceMetadataProvider
from botocore.exceptions import ClientError, CredentialRetrievalError
from botocore.utils import ContainerMetadataFetcher, InstanceMetadataFetcher

from pool.standins.aws import AwsStandIns

METHODS = {
    "lambda": "env",
    "ecs": "container-role",
    "eks_pod_identity": "container-role",
    "ec2": "iam-role",
    "eks_irsa": "assume-role-with-web-identity",
}
SESSIONS = {
    "lambda": "lambda-function",
    "ecs": "ecs-task",
    "eks_pod_identity": "eks-pod-identity",
    "ec2": "i-standin",
    "eks_irsa": "eks-irsa",
}


def use_environment(env: pytest.MonkeyPatch, aws: AwsStandIns, environment: str) -> None:
    for name, value in aws.env_for(environment).items():
        env.setenv(name, value)
    if environment == "ec2":
        env.delenv("AWS_EC2_METADATA_DISABLED")


async def _no_sleep(_: float) -> None:
    return None


# -- botocore -----------------------------------------------------------------


@pytest.mark.parametrize("environment", list(METHODS))
def test_botocore_session_loads_from_each_endpoint(
    threaded_aws: AwsStandIns, clean_aws_env: pytest.MonkeyPatch, environment: str
) -> None:
    """botocore's default chain finds the environment's credentials and STS accepts them."""
    use_environment(clean_aws_env, threaded_aws, environment)
    session = botocore.session.Session()
    creds = session.get_credentials()
    assert creds is not None and creds.method == METHODS[environment]
    frozen = creds.get_frozen_credentials()
    issued = threaded_aws.authority.lookup(frozen.access_key)
    assert issued is not None and issued.session_token == frozen.token
    assert issued.session_name == SESSIONS[environment]
    client = session.create_client("sts", endpoint_url=threaded_aws.sts_url)
    assert client.get_caller_identity()["Arn"] == issued.arn


def test_botocore_container_wrong_token_fails_without_leaking(threaded_aws: AwsStandIns) -> None:
    """A wrong container token makes botocore's provider fail (after its 3 tries) with no secret."""
    environ = {
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": threaded_aws.ecs_full_uri,
        "AWS_CONTAINER_AUTHORIZATION_TOKEN": "wrong-token",
    }
    provider = ContainerProvider(environ, fetcher=ContainerMetadataFetcher(sleep=lambda _: None))
    with pytest.raises(CredentialRetrievalError) as info:
        provider.load()
    assert "403" in str(info.value) and threaded_aws.ecs_auth_token not in str(info.value)
    assert threaded_aws.ecs.requests["credentials"] == 3


def test_botocore_pod_identity_rereads_rotated_token_file(threaded_aws: AwsStandIns) -> None:
    """botocore re-reads the Pod Identity token file, so a rotated token keeps working."""
    env = threaded_aws.env_for("eks_pod_identity")
    provider = ContainerProvider(env, fetcher=ContainerMetadataFetcher(sleep=lambda _: None))
    assert provider.load() is not None
    threaded_aws.pod_identity.auth_token = "rotated-token"  # the agent now wants a new token
    with pytest.raises(CredentialRetrievalError):
        provider.load()
    threaded_aws.pod_identity_token_file.write_text("rotated-token")  # the kubelet rotates it
    assert provider.load() is not None


@pytest.mark.parametrize("spec", ["imds:credentials:error=500", "imds:throttle"])
def test_botocore_imds_failure_gives_no_credentials(threaded_aws: AwsStandIns, spec: str) -> None:
    """IMDS errors or throttling make botocore's IMDS provider return nothing."""
    threaded_aws.faults.add(spec)
    fetcher = InstanceMetadataFetcher(timeout=2, num_attempts=1, base_url=threaded_aws.imds_url)
    assert InstanceMetadataProvider(iam_role_fetcher=fetcher).load() is None


def test_botocore_imds_v1_fallback_refused_unless_enabled(threaded_aws: AwsStandIns) -> None:
    """When the token PUT is refused botocore falls back to IMDSv1, which is off by default."""
    threaded_aws.faults.add("imds:token:error=403")
    fetcher = InstanceMetadataFetcher(timeout=2, num_attempts=1, base_url=threaded_aws.imds_url)
    assert InstanceMetadataProvider(iam_role_fetcher=fetcher).load() is None
    assert threaded_aws.imds.requests["roles"] == 1  # it did try IMDSv1
    threaded_aws.imds.imdsv1 = True
    creds = InstanceMetadataProvider(iam_role_fetcher=fetcher).load()
    assert creds is not None and creds.method == "iam-role"


def test_botocore_web_identity_bad_token_fails(
    threaded_aws: AwsStandIns, clean_aws_env: pytest.MonkeyPatch
) -> None:
    """A token file STS does not accept makes the web identity provider fail as STS says."""
    use_environment(clean_aws_env, threaded_aws, "eks_irsa")
    threaded_aws.web_identity_token_file.write_text("not.a-valid.token")
    creds = botocore.session.Session().get_credentials()
    with pytest.raises(ClientError) as info:
        creds.get_frozen_credentials()
    assert info.value.response["Error"]["Code"] == "InvalidIdentityToken"


# -- aiobotocore --------------------------------------------------------------


@pytest.mark.parametrize("environment", list(METHODS))
async def test_aiobotocore_session_loads_from_each_endpoint(
    aws: AwsStandIns, clean_aws_env: pytest.MonkeyPatch, environment: str
) -> None:
    """aiobotocore's default chain finds the environment's credentials and STS accepts them."""
    use_environment(clean_aws_env, aws, environment)
    session = AioSession()
    creds = await session.get_credentials()
    assert creds is not None and creds.method == METHODS[environment]
    frozen = await creds.get_frozen_credentials()
    issued = aws.authority.lookup(frozen.access_key)
    assert issued is not None and issued.session_name == SESSIONS[environment]
    async with session.create_client("sts", endpoint_url=aws.sts_url) as client:
        assert (await client.get_caller_identity())["Arn"] == issued.arn


async def test_aiobotocore_container_wrong_token_fails(aws: AwsStandIns) -> None:
    """aiobotocore's container provider fails on a wrong token without leaking the right one."""
    environ = {
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": aws.ecs_full_uri,
        "AWS_CONTAINER_AUTHORIZATION_TOKEN": "wrong-token",
    }
    provider = AioContainerProvider(environ)
    # aiobotocore replaces any fetcher passed in; swap ours in to skip its 1 s retry sleeps.
    provider._fetcher = AioContainerMetadataFetcher(sleep=_no_sleep)
    with pytest.raises(CredentialRetrievalError) as info:
        await provider.load()
    assert aws.ecs_auth_token not in str(info.value)


async def test_aiobotocore_imds_throttled_gives_no_credentials(aws: AwsStandIns) -> None:
    """A throttled IMDS makes aiobotocore's IMDS provider return nothing."""
    aws.faults.add("imds:credentials:throttle")
    fetcher = AioInstanceMetadataFetcher(timeout=2, num_attempts=1, base_url=aws.imds_url)
    assert await AioInstanceMetadataProvider(iam_role_fetcher=fetcher).load() is None


async def test_aiobotocore_rejected_credentials(
    aws: AwsStandIns, clean_aws_env: pytest.MonkeyPatch, clock: Any
) -> None:
    """aiobotocore's STS client sees ExpiredToken for credentials past their expiry."""
    creds = aws.authority.mint(lifetime=30)
    clock.advance(31)
    session = AioSession()
    async with session.create_client(
        "sts",
        endpoint_url=aws.sts_url,
        region_name="us-east-1",
        aws_access_key_id=creds.access_key_id,
        aws_secret_access_key=creds.secret_access_key,
        aws_session_token=creds.session_token,
    ) as client:
        with pytest.raises(ClientError) as info:
            await client.get_caller_identity()
    assert info.value.response["Error"]["Code"] == "ExpiredToken"
