"""What ``python -m pool bench`` measures against: environments, latency profiles, contenders.

Every environment is configured the way AWS configures it (the stand-ins'
standard variables), in a hermetic way: ``AWS_CONFIG_FILE`` and
``AWS_SHARED_CREDENTIALS_FILE`` point into a temporary directory, so a
developer's own ``~/.aws`` never takes part. Role chaining
(``assume_role``) is EC2 instance credentials plus ``AssumeRole``; for
botocore (PyMongo's built-in lookup, aiobotocore) that takes a shared-config
profile, ``role_arn`` with ``credential_source = Ec2InstanceMetadata``, which
is written into that directory.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["ENVIRONMENTS", "PROFILES", "TOPOLOGIES", "TOPOLOGY_LABELS", "BenchSetup", "Profile"]

ENVIRONMENTS: dict[str, str] = {
    "lambda": "AWS Lambda (env vars)",
    "ecs": "Amazon ECS",
    "ec2": "Amazon EC2 (IMDSv2)",
    "eks_irsa": "EKS IRSA (web identity)",
    "eks_pod_identity": "EKS Pod Identity",
    "assume_role": "Role chaining (EC2 + AssumeRole)",
    # AWS_PROFILE on a developer's machine. The bench uses the credential_process
    # profile (botocore and PyMongo's lookup can run it too); the demo the SSO one.
    "laptop": "Developer laptop (AWS_PROFILE)",
}

#: ``--topology``: the emulator's MongoDB options (what Atlas users compare with: TLS, a set).
#: A run without the flag measures every one, in this order; the first is the one
#: the JSON's top-level figures describe.
TOPOLOGIES: dict[str, dict[str, Any]] = {
    "standalone": {},
    "replica-set-tls": {"replica_set": 3, "tls": True},
}
TOPOLOGY_LABELS: dict[str, str] = {
    "standalone": "standalone, plaintext",
    "replica-set-tls": "replica set (3) over TLS",
}

#: The aiobotocore provider a default ``AioSession`` picks in each environment.
_AIOBOTOCORE_PROVIDER = {
    "ecs": "container-role",
    "eks_pod_identity": "container-role",
    "ec2": "iam-role",
    "eks_irsa": "assume-role-with-web-identity",
    "assume_role": "assume-role",
    "laptop": "custom-process",
}


@dataclass(frozen=True)
class Profile:
    """Latency added at the stand-ins: per MongoDB command, plus fault specs per endpoint.

    ``figures`` are (what, added latency, basis) rows for the report.
    """

    name: str
    command_delay: float = 0.0
    faults: tuple[str, ...] = ()
    figures: tuple[tuple[str, str, str], ...] = field(default=())


# Figures and their basis are in the README ("--profile aws"). AWS publishes no
# latency figure for IMDS, the container agents or STS, so these are stated
# assumptions, chosen low: a slow endpoint only widens this library's lead,
# because PyMongo's built-in lookup pays the endpoint inside every handshake.
PROFILES: dict[str, Profile] = {
    "loopback": Profile("loopback"),
    "aws": Profile(
        "aws",
        command_delay=0.001,
        faults=(
            "imds:latency=0.001",
            "ecs:latency=0.001",
            "eks_pod_identity:latency=0.001",
            "sts:latency=0.010",
            "mongo:isMaster:latency=0.002",
            "mongo:hello:latency=0.002",
            "mongo:saslContinue:latency=0.010",
        ),
        figures=(
            ("IMDS, each request", "1 ms", "link-local, no AWS figure published (assumed)"),
            ("ECS agent / EKS Pod Identity agent", "1 ms", "on the host/node (assumed)"),
            ("STS regional endpoint, each call", "10 ms", "no AWS figure published (assumed)"),
            (
                "Atlas, each command (in-region RTT)",
                "1 ms",
                "AWS: 'single-digit millisecond' between AZs",
            ),
            ("Atlas, connection set-up (TCP + TLS 1.3)", "+2 ms", "2 round trips"),
            ("Atlas, saslContinue (its own STS call)", "+10 ms", "as STS above"),
        ),
    ),
}


def _write_profile(path: Path, role_arn: str) -> None:
    path.write_text(
        "[default]\n"
        f"role_arn = {role_arn}\n"
        "credential_source = Ec2InstanceMetadata\n"
        "role_session_name = bench-chained\n",
        "utf-8",
    )


class BenchSetup:
    """Variables, our sources and aiobotocore's providers for each environment.

    Built from the emulator's ``info`` (see :class:`pool.standins.process.EmulatorProcess`).
    Async context manager owning a temporary directory. The variables it
    returns hold the stand-ins' throwaway secrets: never print them.
    """

    def __init__(self, info: dict[str, Any]) -> None:
        self._info = info
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    async def __aenter__(self) -> BenchSetup:
        self._dir = tempfile.TemporaryDirectory(prefix="pool-bench-")
        await asyncio.to_thread(
            _write_profile, self._path("config"), str(self._info["chained_role_arn"])
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def _path(self, name: str) -> Path:
        assert self._dir is not None, "use 'async with BenchSetup(...)'"
        return Path(self._dir.name) / name

    def variables(self, env: str) -> dict[str, str]:
        """Every ``AWS_*`` variable a process in ``env`` sees (for ``patched_environ``)."""
        hermetic = {
            "AWS_CONFIG_FILE": str(self._path("no-config")),
            "AWS_SHARED_CREDENTIALS_FILE": str(self._path("no-credentials")),
        }
        if env == "laptop":
            return {**hermetic, **self._info["laptop"]["process"]}
        if env != "assume_role":
            return {**hermetic, **self._info["environments"][env]}
        region = str(self._info["region"])
        return {
            **hermetic,
            **self._info["environments"]["ec2"],
            "AWS_CONFIG_FILE": str(self._path("config")),
            "AWS_ENDPOINT_URL_STS": str(self._info["sts_endpoint"]),
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,  # botocore's own name for it
        }

    def our_source(self, env: str) -> Any:
        """This library's source for ``env``, as a service would build it.

        ``from_environment()`` on the environment's variables; for role
        chaining an ``AssumeRoleSource`` over a cached instance-metadata
        source (the configuration its docstring recommends).
        """
        from pool.cache import CredentialCache
        from pool.sources import AssumeRoleSource, InstanceMetadataSource, from_environment

        variables = self.variables(env)
        if env != "assume_role":
            return from_environment(variables)
        base = CredentialCache(InstanceMetadataSource.from_env(variables), owns_source=True)
        return AssumeRoleSource.from_env(
            variables,
            role_arn=str(self._info["chained_role_arn"]),
            base=base,
            session_name="bench-chained",
        )

    async def aiobotocore_refresh(self, env: str) -> Callable[[], Awaitable[object]] | None:
        """The call aiobotocore makes when ``env``'s credentials are due; None for Lambda.

        A default ``AioSession`` resolves the provider from the variables
        (``os.environ`` must already hold them); its credentials are loaded
        once, and the returned callable runs their ``refresh_using``, the
        fetch ``AioRefreshableCredentials`` performs at each refresh. The STS
        providers' fetcher caches responses until 15 minutes before expiry,
        as long as aiobotocore's own refresh window, so a real refresh
        always misses that cache: the callable clears it first.
        """
        method = _AIOBOTOCORE_PROVIDER.get(env)
        if method is None:
            return None
        provider = await asyncio.to_thread(_aiobotocore_provider, method)
        creds = await provider.load()
        await creds.get_frozen_credentials()
        refresh_using: Callable[[], Awaitable[object]] = creds._refresh_using
        cache: dict[str, Any] | None = getattr(provider, "cache", None)

        async def refresh() -> object:
            if cache is not None:
                cache.clear()
            return await refresh_using()

        return refresh


def _aiobotocore_provider(method: str) -> Any:
    # Session and resolver set-up reads files and builds botocore state: off the loop.
    from aiobotocore.session import AioSession

    resolver = AioSession().get_component("credential_provider")
    provider = resolver.get_provider(method)
    if provider is None:
        raise RuntimeError(f"aiobotocore has no credential provider named {method!r}")
    return provider
