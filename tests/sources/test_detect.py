"""from_environment(): the MongoDB auth spec's order, and what it says when nothing is found."""

from __future__ import annotations

import socket

import pytest

from pool import (
    ConfigurationError,
    CredentialFetchError,
    NoAwsEnvironmentError,
    NoCredentialsFoundError,
)
from pool.sources import (
    ContainerSource,
    EnvironmentSource,
    InstanceMetadataSource,
    WebIdentitySource,
    from_environment,
)
from pool.standins.aws import AwsStandIns

KEYS = {"AWS_ACCESS_KEY_ID": "ASIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret"}
IRSA = {
    "AWS_WEB_IDENTITY_TOKEN_FILE": "/var/run/secrets/eks.amazonaws.com/serviceaccount/token",
    "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/app",
}
ECS = {"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials/x"}


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (KEYS | IRSA | ECS, EnvironmentSource),
        (IRSA | ECS, WebIdentitySource),
        (ECS, ContainerSource),
        ({}, InstanceMetadataSource),
    ],
    ids=["env-first", "web-identity-second", "container-third", "ec2-last"],
)
def test_spec_order(env: dict[str, str], expected: type) -> None:
    """Environment variables, then web identity, then the container endpoint, then EC2."""
    assert isinstance(from_environment(env), expected)


@pytest.mark.parametrize(
    ("env", "last"),
    [
        ({"AWS_EC2_METADATA_DISABLED": "true"}, "disabled by AWS_EC2_METADATA_DISABLED=true"),
        ({}, "include_ec2=False"),
    ],
)
def test_nothing_found_lists_what_was_checked(env: dict[str, str], last: str) -> None:
    """With no source configured the error lists all five checks, in order."""
    with pytest.raises(NoCredentialsFoundError) as info:
        from_environment(env, include_ec2="AWS_EC2_METADATA_DISABLED" in env)
    checked = info.value.checked
    assert len(checked) == 5
    assert "AWS_ACCESS_KEY_ID" in checked[0]
    assert "AWS_PROFILE" in checked[1]
    assert "AWS_WEB_IDENTITY_TOKEN_FILE" in checked[2]
    assert "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI" in checked[3]
    assert last in checked[4]
    assert all(line in str(info.value) for line in checked)


@pytest.mark.parametrize(
    ("env", "match"),
    [
        ({"AWS_ACCESS_KEY_ID": "ASIAEXAMPLE"} | IRSA, "AWS_SECRET_ACCESS_KEY"),
        ({"AWS_WEB_IDENTITY_TOKEN_FILE": "/t"} | ECS, "AWS_ROLE_ARN"),
        ({"AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://example.com/x"}, "not allowed"),
    ],
    ids=["key-without-secret", "token-without-role", "refused-container-uri"],
)
def test_misconfigured_source_is_reported_not_skipped(env: dict[str, str], match: str) -> None:
    """A half-configured source raises ConfigurationError instead of falling through."""
    with pytest.raises(ConfigurationError, match=match):
        from_environment(env)


@pytest.mark.parametrize(
    ("environment", "name"),
    [
        ("lambda", "env"),
        ("ecs", "ecs"),
        ("eks_pod_identity", "eks_pod_identity"),
        ("ec2", "ec2"),
        ("eks_irsa", "eks_irsa"),
    ],
)
async def test_every_standin_environment_is_detected_and_works(
    aws: AwsStandIns, environment: str, name: str
) -> None:
    """Each environment's standard variables lead to a source that fetches valid credentials."""
    async with from_environment(aws.env_for(environment)) as source:
        creds = await source.fetch()
    assert source.name == creds.source == name
    assert aws.authority.lookup(creds.access_key_id) is not None
    assert not creds.expired()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_laptop_fetch_says_no_aws_environment_was_found(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No AWS variables and no IMDS (a laptop): the fetch lists what was checked, no EC2 hint."""
    import pool.sources.instance_metadata as imds

    # The default metadata address, moved to a closed loopback port (never 169.254.169.254).
    monkeypatch.setattr(imds, "IPV4_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    import os

    no_files = {"AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}
    async with from_environment(no_files) as source:
        assert isinstance(source, InstanceMetadataSource)  # the spec's order is kept
        with pytest.raises(NoCredentialsFoundError) as info:
            await source.fetch()
    exc = info.value
    assert isinstance(exc, NoAwsEnvironmentError) and isinstance(exc, CredentialFetchError)
    assert exc.retryable  # on EC2, IMDS may come back
    text = str(exc)
    assert "nothing is configured" in text and "off AWS" in text
    assert "modify-instance-metadata-options" not in text
    for checked in (
        "AWS_ACCESS_KEY_ID",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "FULL_URI",
        "did not answer",
    ):
        assert checked in text
    assert len(exc.checked) == 5  # env, profile, web identity, container, IMDS


async def test_explicit_imds_source_keeps_its_own_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    """An InstanceMetadataSource built on purpose reports IMDS's own error, not 'no environment'."""
    source = InstanceMetadataSource(endpoint=f"http://127.0.0.1:{_closed_port()}", attempts=1)
    async with source:
        with pytest.raises(CredentialFetchError) as info:
            await source.fetch()
    assert not isinstance(info.value, NoCredentialsFoundError)
