"""What ``check`` says about where credentials came from and which STS endpoint was used.

Kept apart from :mod:`pool.cli.check` (the steps) because it knows each
source's attributes: where a source's credentials come from (file, profile,
URL, role), which STS endpoint it calls, and the region checks that catch a
mismatch before the MongoDB server answers code 18.
"""

from __future__ import annotations

from typing import Any

from pool.sources._http import describe_url
from pool.sources._sts_endpoint import StsEndpoint, region_of_host

__all__ = [
    "fetch_target",
    "host_port",
    "is_loopback",
    "mongo_hosts",
    "origin",
    "region_findings",
    "sts_endpoint_of",
]


def origin(source: Any) -> str:
    """Where ``source`` gets its credentials, for a human: never a secret."""
    from pool.sources import (
        AssumeRoleSource,
        ContainerSource,
        EnvironmentSource,
        InstanceMetadataSource,
        ProfileSource,
        WebIdentitySource,
    )

    if isinstance(source, ProfileSource):
        return source.describe()
    if isinstance(source, AssumeRoleSource):
        return f"role {source.role_arn} assumed with {source.base.name} ({origin(source.base)})"
    if isinstance(source, WebIdentitySource):
        return f"role {source.role_arn} for the token in {source.token_file}"
    if isinstance(source, EnvironmentSource):
        return "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN"
    if isinstance(source, ContainerSource):
        return f"the container endpoint {describe_url(source.url)}"
    if isinstance(source, InstanceMetadataSource):
        return f"instance metadata at {describe_url(source.endpoint)}"
    return type(source).__name__


def sts_endpoint_of(source: Any) -> StsEndpoint | None:
    """The STS endpoint ``source`` (or the source a profile resolved to) calls, if any."""
    inner = getattr(source, "_inner", None)
    if inner is not None and inner is not source:
        return sts_endpoint_of(inner)
    sts = getattr(source, "sts", None)
    endpoint = getattr(sts, "endpoint", None)
    return endpoint if isinstance(endpoint, StsEndpoint) else None


def region_findings(endpoint: StsEndpoint) -> list[tuple[bool | None, str, str]]:
    """(ok, detail, fix) rows about ``endpoint``'s region; empty when nothing is wrong.

    * An override URL whose host names another region than the signing one:
      STS refuses the signature (``SignatureDoesNotMatch``), so ``AssumeRole``
      and ``GetCallerIdentity`` fail.
    * The global endpoint (``AWS_STS_REGIONAL_ENDPOINTS=legacy``): its session
      tokens are valid only in regions enabled by default, so a cluster whose
      STS region is opt-in refuses them with code 18.
    """
    rows: list[tuple[bool | None, str, str]] = []
    named = region_of_host(endpoint.host)
    if endpoint.configured and named and named != endpoint.region:
        rows.append(
            (
                False,
                f"{endpoint.how} is in {named} but requests are signed for {endpoint.region}",
                f"STS answers SignatureDoesNotMatch. Set AWS_REGION={named}, or point\n"
                f"AWS_ENDPOINT_URL_STS at sts.{endpoint.region}.amazonaws.com.",
            )
        )
    if endpoint.url == "https://sts.amazonaws.com":
        rows.append(
            (
                None,
                "the global STS endpoint (AWS_STS_REGIONAL_ENDPOINTS=legacy)",
                "Its session tokens are refused in opt-in regions (code 18 from the server);\n"
                "prefer the regional endpoint: unset AWS_STS_REGIONAL_ENDPOINTS.",
            )
        )
    return rows


def host_port(url: str, default_port: int = 443) -> str:
    """``host:port`` of an http(s) URL (what a call went to; never a path or a token)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    port = parts.port or (80 if parts.scheme == "http" else default_port)
    host = parts.hostname or "?"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and 127.0.0.0/8 / ``::1`` literals."""
    import ipaddress

    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def fetch_target(source: Any) -> str:
    """Where ``source.fetch()`` goes: ``host:port``, or what it reads instead of a network."""
    if callable(getattr(source, "subscribe", None)):  # a CredentialCache: its source
        return fetch_target(source.source)
    base = getattr(source, "base", None)  # AssumeRoleSource: its base first
    for attr in ("url", "endpoint"):
        value = getattr(source, attr, None)
        if isinstance(value, str):
            return host_port(value)
    inner = getattr(source, "_inner", None)  # ProfileSource: what the profile resolved to
    if inner is not None and inner is not source:
        return fetch_target(inner)
    endpoint = sts_endpoint_of(source)
    if endpoint is not None:
        own = host_port(endpoint.url)
        return own if base is None else f"{fetch_target(base)}, then {own}"
    if type(source).__name__ == "EnvironmentSource":
        return "no network (environment variables)"
    return type(source).__name__


def mongo_hosts(uri: str) -> list[str]:
    """The seed hosts of a ``mongodb://`` URI (empty for ``mongodb+srv://``: resolved by DNS)."""
    from pymongo.uri_parser import parse_uri

    if uri.lower().startswith("mongodb+srv://"):
        return []
    try:
        return [f"{h}:{p}" for h, p in parse_uri(uri, warn=True)["nodelist"]]
    except Exception:
        return []
