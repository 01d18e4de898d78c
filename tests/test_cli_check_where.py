"""check's region findings: a signing-region mismatch or the global endpoint, caught early."""

from __future__ import annotations

from pool.cli.check_where import region_findings
from pool.sources._sts_endpoint import resolve_sts_endpoint


def test_endpoint_in_another_region_than_the_signing_one_fails() -> None:
    """An override in eu-west-1 signed for us-east-2: a failing finding with the fix."""
    env = {"AWS_REGION": "us-east-2", "AWS_ENDPOINT_URL_STS": "https://sts.eu-west-1.amazonaws.com"}
    rows = region_findings(resolve_sts_endpoint(env))
    assert [ok for ok, _, _ in rows] == [False]
    assert "AWS_REGION=eu-west-1" in rows[0][2]


def test_global_endpoint_is_a_warning() -> None:
    """AWS_STS_REGIONAL_ENDPOINTS=legacy: a warning about opt-in regions and code 18."""
    env = {"AWS_REGION": "eu-west-1", "AWS_STS_REGIONAL_ENDPOINTS": "legacy"}
    rows = region_findings(resolve_sts_endpoint(env))
    assert [ok for ok, _, _ in rows] == [None] and "code 18" in rows[0][2]


def test_regional_and_loopback_endpoints_are_fine() -> None:
    """The default regional endpoint and a stand-in URL produce no finding."""
    assert region_findings(resolve_sts_endpoint({"AWS_REGION": "eu-west-1"})) == []
    assert (
        region_findings(resolve_sts_endpoint({"AWS_ENDPOINT_URL_STS": "http://127.0.0.1:1"})) == []
    )
