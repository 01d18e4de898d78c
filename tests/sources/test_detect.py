"""from_environment(): the MongoDB auth spec's order, and what it says when nothing is found."""

from __future__ import annotations

import pytest

from pool import ConfigurationError, NoCredentialsFoundError
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
    assert type(from_environment(env)) is expected


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
