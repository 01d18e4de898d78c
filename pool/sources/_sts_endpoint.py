"""Which STS endpoint a source calls, and with which signing region: the SDKs' rules.

Read from botocore 1.40.61 (``botocore/args.py`` ``LEGACY_GLOBAL_STS_REGIONS``,
``_get_sts_regional_endpoints_config``; ``data/sts/2011-06-15/endpoint-rule-set-1.json``;
``data/partitions.json``) and the AWS SDKs and Tools reference guide:

1. ``AWS_ENDPOINT_URL_STS``, then ``AWS_ENDPOINT_URL``, win over everything
   (unless ``AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true``); the signing region
   is still the configured region.
2. Region: ``AWS_REGION``, then ``AWS_DEFAULT_REGION``, then the profile's
   ``region``, then ``us-east-1``.
3. ``AWS_USE_FIPS_ENDPOINT=true``: ``sts-fips.<region>.<dns suffix>``
   (GovCloud's STS is FIPS already: ``sts.<region>.amazonaws.com``);
   ``AWS_USE_DUALSTACK_ENDPOINT=true``: ``<dual-stack suffix>`` (``api.aws``).
4. ``AWS_STS_REGIONAL_ENDPOINTS=legacy`` and one of the sixteen legacy
   regions: the global ``sts.amazonaws.com`` (signed for ``us-east-1``).
   The default (botocore since 1.35, every SDK since 2025) is ``regional``.

Pure functions of a mapping: no file, no network, no AWS SDK.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from pool.errors import ConfigurationError

__all__ = ["StsEndpoint", "region_of_host", "resolve_sts_endpoint"]

LEGACY_GLOBAL_REGIONS = frozenset(
    {
        "ap-northeast-1", "ap-south-1", "ap-southeast-1", "ap-southeast-2", "aws-global",
        "ca-central-1", "eu-central-1", "eu-north-1", "eu-west-1", "eu-west-2", "eu-west-3",
        "sa-east-1", "us-east-1", "us-east-2", "us-west-1", "us-west-2",
    }
)  # fmt: skip
# (region pattern, DNS suffix, dual-stack suffix), botocore's partitions.json.
_PARTITIONS = (
    (re.compile(r"^cn-\w+-\d+$"), "amazonaws.com.cn", "api.amazonwebservices.com.cn"),
    (re.compile(r"^us-gov-\w+-\d+$"), "amazonaws.com", "api.aws"),
    (re.compile(r"^eusc-de-\w+-\d+$"), "amazonaws.eu", "api.amazonwebservices.eu"),
    (re.compile(r"^us-iso-\w+-\d+$"), "c2s.ic.gov", "api.aws.ic.gov"),
    (re.compile(r"^us-isob-\w+-\d+$"), "sc2s.sgov.gov", "api.aws.scloud"),
    (re.compile(r"^eu-isoe-\w+-\d+$"), "cloud.adc-e.uk", "api.cloud-aws.adc-e.uk"),
    (re.compile(r"^us-isof-\w+-\d+$"), "csp.hci.ic.gov", "api.aws.hci.ic.gov"),
)
_REGION = re.compile(r"^[a-z]{2,5}(-[a-z]+)+-\d+$|^aws-global$")
_STS_HOST = re.compile(r"^sts(?:-fips)?\.([a-z0-9-]+)\.(?:amazonaws|api)\.")


@dataclass(frozen=True)
class StsEndpoint:
    """Where STS calls go: ``url`` (no trailing slash), the SigV4 ``region``, and ``how``
    it was chosen (for ``check`` and error messages). ``configured`` is the override
    URL from the environment, or None when the SDK rules picked ``url``."""

    url: str
    region: str
    how: str
    configured: str | None = None

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() == "true"


def _setting(env: Mapping[str, str], profile: Mapping[str, str], var: str, key: str) -> str:
    return (env.get(var) or profile.get(key) or "").strip()


def region_of_host(host: str) -> str | None:
    """The region an AWS STS host name names (``sts.eu-west-1.amazonaws.com`` → eu-west-1);
    ``us-east-1`` for the global ``sts.amazonaws.com``; None for any other host."""
    host = host.lower().rstrip(".")
    if host == "sts.amazonaws.com":
        return "us-east-1"
    m = _STS_HOST.match(host)
    return m[1] if m else None


def resolve_sts_endpoint(
    environ: Mapping[str, str], profile: Mapping[str, str] | None = None
) -> StsEndpoint:
    """The endpoint the AWS SDKs would call for STS given ``environ`` (and a profile's
    settings: ``region``, ``sts_regional_endpoints``, ``use_fips_endpoint``,
    ``use_dualstack_endpoint``, ``endpoint_url``; the variables win).

    Raises :class:`pool.ConfigurationError` for an ``AWS_STS_REGIONAL_ENDPOINTS``
    value other than ``regional``/``legacy`` (botocore refuses it too) or a
    region name that cannot be one.
    """
    prof = profile or {}
    region = (
        environ.get("AWS_REGION")
        or environ.get("AWS_DEFAULT_REGION")
        or prof.get("region")
        or "us-east-1"
    ).strip()
    if not _REGION.match(region):
        raise ConfigurationError(
            f"STS: {region!r} is not an AWS region name (e.g. eu-west-1); fix AWS_REGION, "
            "AWS_DEFAULT_REGION or the profile's region"
        )
    mode = _setting(environ, prof, "AWS_STS_REGIONAL_ENDPOINTS", "sts_regional_endpoints")
    if mode.lower() not in ("", "regional", "legacy"):
        raise ConfigurationError(
            f"STS: AWS_STS_REGIONAL_ENDPOINTS={mode!r} is not valid; use 'regional' "
            "(the default) or 'legacy'"
        )
    if not _truthy(environ.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")):
        for var in ("AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL"):
            if url := (environ.get(var) or "").strip():
                return StsEndpoint(url.rstrip("/"), region, var, configured=url)
        if url := (prof.get("endpoint_url") or "").strip():
            return StsEndpoint(url.rstrip("/"), region, "profile endpoint_url", configured=url)
    fips = _truthy(_setting(environ, prof, "AWS_USE_FIPS_ENDPOINT", "use_fips_endpoint"))
    dual = _truthy(_setting(environ, prof, "AWS_USE_DUALSTACK_ENDPOINT", "use_dualstack_endpoint"))
    if region == "aws-global" or (
        mode.lower() == "legacy" and region in LEGACY_GLOBAL_REGIONS and not (fips or dual)
    ):
        return StsEndpoint("https://sts.amazonaws.com", "us-east-1", "global (legacy)")
    suffix, dual_suffix = "amazonaws.com", "api.aws"
    for pattern, s, d in _PARTITIONS:
        if pattern.match(region):
            suffix, dual_suffix = s, d
            break
    name = "sts"
    if fips and not (region.startswith("us-gov-") and not dual):
        name = "sts-fips"
    how = "regional" + (" FIPS" if fips else "") + (" dual-stack" if dual else "")
    return StsEndpoint(f"https://{name}.{region}.{dual_suffix if dual else suffix}", region, how)
