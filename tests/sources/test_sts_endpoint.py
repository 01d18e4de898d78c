"""Where STS calls go: the AWS SDKs' regional, legacy, FIPS, dual-stack and override rules."""

from __future__ import annotations

import pytest

from pool import ConfigurationError
from pool.sources._sts_endpoint import region_of_host, resolve_sts_endpoint


@pytest.mark.parametrize(
    ("env", "url", "region"),
    [
        ({}, "https://sts.us-east-1.amazonaws.com", "us-east-1"),
        ({"AWS_REGION": "eu-west-1"}, "https://sts.eu-west-1.amazonaws.com", "eu-west-1"),
        ({"AWS_DEFAULT_REGION": "ap-east-1"}, "https://sts.ap-east-1.amazonaws.com", "ap-east-1"),
        (
            {"AWS_REGION": "eu-west-1", "AWS_STS_REGIONAL_ENDPOINTS": "legacy"},
            "https://sts.amazonaws.com",
            "us-east-1",
        ),
        (
            {"AWS_REGION": "ap-east-1", "AWS_STS_REGIONAL_ENDPOINTS": "legacy"},
            "https://sts.ap-east-1.amazonaws.com",
            "ap-east-1",
        ),
        (
            {"AWS_REGION": "us-east-2", "AWS_USE_FIPS_ENDPOINT": "true"},
            "https://sts-fips.us-east-2.amazonaws.com",
            "us-east-2",
        ),
        (
            {"AWS_REGION": "eu-west-1", "AWS_USE_DUALSTACK_ENDPOINT": "true"},
            "https://sts.eu-west-1.api.aws",
            "eu-west-1",
        ),
        (
            {"AWS_REGION": "cn-north-1"},
            "https://sts.cn-north-1.amazonaws.com.cn",
            "cn-north-1",
        ),
        (
            {"AWS_REGION": "us-gov-west-1", "AWS_USE_FIPS_ENDPOINT": "true"},
            "https://sts.us-gov-west-1.amazonaws.com",
            "us-gov-west-1",
        ),
        (
            {"AWS_REGION": "eu-west-1", "AWS_ENDPOINT_URL_STS": "http://127.0.0.1:9/"},
            "http://127.0.0.1:9",
            "eu-west-1",
        ),
        (
            {
                "AWS_ENDPOINT_URL": "http://127.0.0.1:8",
                "AWS_ENDPOINT_URL_STS": "http://127.0.0.1:9",
            },
            "http://127.0.0.1:9",
            "us-east-1",
        ),
        (
            {"AWS_ENDPOINT_URL_STS": "http://127.0.0.1:9", "AWS_USE_FIPS_ENDPOINT": "true"},
            "http://127.0.0.1:9",
            "us-east-1",
        ),
        (
            {"AWS_ENDPOINT_URL_STS": "http://x", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true"},
            "https://sts.us-east-1.amazonaws.com",
            "us-east-1",
        ),
    ],
)
def test_endpoint_rules_match_the_sdks(env: dict[str, str], url: str, region: str) -> None:
    """Each variable combination gives the endpoint and signing region botocore would use."""
    endpoint = resolve_sts_endpoint(env)
    assert (endpoint.url, endpoint.region) == (url, region)


def test_endpoint_rules_agree_with_botocore() -> None:
    """botocore's own resolver picks the same host for a sample of regions and flags."""
    import botocore.session

    cases = [
        ("eu-central-1", {}),
        ("ap-southeast-2", {"use_fips_endpoint": True}),
        ("eu-west-1", {"use_dualstack_endpoint": True}),
        ("cn-northwest-1", {}),
    ]
    session = botocore.session.Session()
    for region, flags in cases:
        from botocore.config import Config

        client = session.create_client(
            "sts",
            region_name=region,
            config=Config(**flags),
            aws_access_key_id="x",
            aws_secret_access_key="y",
        )
        env = {"AWS_REGION": region}
        env |= {"AWS_USE_FIPS_ENDPOINT": "true"} if flags.get("use_fips_endpoint") else {}
        env |= {"AWS_USE_DUALSTACK_ENDPOINT": "true"} if flags.get("use_dualstack_endpoint") else {}
        assert resolve_sts_endpoint(env).url == client.meta.endpoint_url.rstrip("/")
        client.close()


def test_profile_settings_apply_and_variables_win() -> None:
    """A profile's region and flags are used; the variables override them."""
    profile = {"region": "eu-north-1", "use_fips_endpoint": "true"}
    assert resolve_sts_endpoint({}, profile).url == "https://sts-fips.eu-north-1.amazonaws.com"
    env = {"AWS_REGION": "eu-west-3", "AWS_USE_FIPS_ENDPOINT": "false"}
    assert resolve_sts_endpoint(env, profile).url == "https://sts.eu-west-3.amazonaws.com"


def test_bad_settings_are_refused() -> None:
    """An unknown AWS_STS_REGIONAL_ENDPOINTS value or a non-region is a ConfigurationError."""
    with pytest.raises(ConfigurationError, match="AWS_STS_REGIONAL_ENDPOINTS"):
        resolve_sts_endpoint({"AWS_STS_REGIONAL_ENDPOINTS": "global"})
    with pytest.raises(ConfigurationError, match="region"):
        resolve_sts_endpoint({"AWS_REGION": "Frankfurt"})


def test_region_of_host() -> None:
    """STS host names give their region; the global one is us-east-1; others give None."""
    assert region_of_host("sts.eu-west-1.amazonaws.com") == "eu-west-1"
    assert region_of_host("sts-fips.us-east-2.amazonaws.com") == "us-east-2"
    assert region_of_host("sts.amazonaws.com") == "us-east-1"
    assert region_of_host("127.0.0.1") is None
