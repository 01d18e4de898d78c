"""Everything at once: the AWS credential endpoints and the Atlas-like MongoDB server.

:class:`Emulator` shares one :class:`~pool.standins.authority.CredentialAuthority`
and one :class:`~pool.standins.faults.FaultInjector` between
:class:`~pool.standins.aws.AwsStandIns` and
:class:`~pool.standins.mongo.server.MongoStandIn`, so credentials minted by
any endpoint authenticate against the server. It is what
``python -m pool emulate``, the demo, the benchmarks and users' own local
tests start.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any
from urllib.parse import quote

from pool._internal.resource import AsyncResource
from pool.errors import ConfigurationError
from pool.standins.authority import CredentialAuthority, aws_time
from pool.standins.aws import ENVIRONMENTS, AwsStandIns
from pool.standins.faults import FaultInjector
from pool.standins.laptop import DeveloperHome
from pool.standins.mongo.cluster import MongoCluster
from pool.standins.mongo.server import MongoStandIn
from pool.standins.mongo.srv import DnsStandIn, loopback_resolution, member_names, publish, srv_uri
from pool.standins.mongo.tls import TlsMaterial
from pool.standins.throttle import Throttle

__all__ = ["CHAINED_ROLE_ARN", "ENVIRONMENTS", "LAPTOP_PROFILES", "Emulator"]

#: The profiles of the stand-in developer home that ``summary()["laptop"]`` exports.
LAPTOP_PROFILES = ("sso", "process", "static", "chained")

#: A second role, mapped to database user ``chained``, for role-chaining
#: (AssumeRole on top of another source) demos and tests.
CHAINED_ROLE_ARN = "arn:aws:iam::123456789012:role/standin-chained"
#: The ``mongodb+srv`` name the DNS stand-in serves (``.test``: reserved, RFC 2606).
SRV_ZONE = "cluster0.pool.test"


class Emulator(AsyncResource):
    """The AWS endpoints and the MongoDB server on loopback, one authority behind both.

    ``lifetime`` is the lifetime in seconds of every credential set the
    endpoints mint (short lifetimes let tests and the demo watch rotations);
    ``command_delay`` adds per-command latency at the MongoDB server.
    ``lambda_lifetime`` is the lifetime of the credential set that
    :meth:`env_for` ``("lambda")`` puts in the variables: Lambda's variables
    hold one set for the sandbox's whole life (hours), so it defaults to an
    hour whatever ``lifetime`` is. ``throttle`` rate-limits the AWS endpoints
    and counts their calls per second (:meth:`stats`). The server maps the default role to
    database user ``app`` and :data:`CHAINED_ROLE_ARN` to ``chained``.

    Topology, as Atlas offers them: by default one standalone server;
    ``replica_set=N`` N members (a :class:`~.mongo.cluster.MongoCluster`),
    ``sharded=N`` N ``mongos`` routers instead; ``tls=True`` serves every
    listener over TLS (:attr:`tls_ca_file`); ``srv=True`` (needs a set or
    routers) advertises the members as ``m<i>.cluster0.pool.test`` and
    starts a loopback DNS stand-in publishing them (:attr:`mongodb_srv_uri`;
    in-process clients resolve it inside :meth:`srv_resolution`).
    Async context manager; ``aclose()`` is idempotent.
    """

    def __init__(
        self,
        *,
        lifetime: float = 3600.0,
        refresh_margin: float | None = None,
        faults: FaultInjector | None = None,
        command_delay: float = 0.0,
        imdsv1: bool = False,
        min_duration: float | None = None,
        lambda_lifetime: float = 3600.0,
        throttle: Throttle | None = None,
        replica_set: int = 0,
        sharded: int = 0,
        tls: bool = False,
        srv: bool = False,
    ) -> None:
        if replica_set < 0 or sharded < 0 or (replica_set and sharded):
            raise ConfigurationError("choose replica_set=N or sharded=N (N >= 1), not both")
        if srv and not (replica_set or sharded):
            raise ConfigurationError("srv=True needs replica_set=N or sharded=N, as on Atlas")
        self.lambda_lifetime = lambda_lifetime
        self.faults = faults if faults is not None else FaultInjector()
        self.authority = CredentialAuthority(
            default_lifetime=lifetime,
            min_duration=min(900.0, lifetime) if min_duration is None else min_duration,
        )
        self.authority.configure_role(CHAINED_ROLE_ARN)  # the role-chaining environment's role
        self.aws = AwsStandIns(
            self.authority,
            lifetime=lifetime,
            refresh_margin=refresh_margin,
            faults=self.faults,
            imdsv1=imdsv1,
            throttle=throttle,
        )
        self.throttle = self.aws.throttle
        # IAM Identity Center access tokens live an hour; with short credential lifetimes
        # (the demo's seconds) they are shortened too, into the 15-minute refresh window,
        # so the laptop's SSO profile refreshes its token through OIDC CreateToken.
        self.aws.sso.token_lifetime = min(3600.0, max(120.0, 20 * lifetime))
        self.home = DeveloperHome(self.aws)
        users = {
            self.authority.default_role_arn: "app",
            CHAINED_ROLE_ARN: "chained",
            # The developer laptop's identities (Atlas maps IAM users as well as roles).
            self.home.chained_role_arn: "laptop",
            self.home.chained_twice_role_arn: "laptop",
            f"arn:aws:iam::{self.authority.account_id}:user/developer": "laptop",
        }
        self.mongo: MongoStandIn | MongoCluster
        self.dns: DnsStandIn | None = None
        self._tls: TlsMaterial | None = None
        if replica_set or sharded:
            count = sharded or replica_set
            self.mongo = MongoCluster(
                self.authority,
                members=replica_set or 1,
                sharded=sharded,
                users=users,
                faults=self.faults,
                command_delay=command_delay,
                tls=tls,
                hostnames=member_names(SRV_ZONE, count) if srv else None,
            )
            self.dns = DnsStandIn(SRV_ZONE) if srv else None
        else:
            self.mongo = MongoStandIn(
                self.authority, users=users, faults=self.faults, command_delay=command_delay
            )
            self._tls = TlsMaterial() if tls else None
        # A developer's home (~/.aws with SSO, credential_process, keys, role chains)
        # in a temporary directory, written at start().
        self._closed = False

    def __repr__(self) -> str:
        return f"<Emulator aws={self.aws!r} mongo={self.mongo!r}>"

    async def start(self, host: str = "127.0.0.1", mongo_port: int = 0) -> None:
        """Start the AWS endpoints and the MongoDB server on ``host``."""
        try:
            await self.aws.start(host)
            await self.home.__aenter__()
            if isinstance(self.mongo, MongoCluster):
                ports = (
                    [mongo_port + i for i in range(len(self.mongo.servers))] if mongo_port else None
                )
                await self.mongo.start(host, ports)
            else:
                ctx = self._tls.server_context() if self._tls else None
                await self.mongo.start(host, mongo_port, tls=ctx)
            if self.dns is not None and isinstance(self.mongo, MongoCluster):
                await self.dns.start(host)
                publish(self.dns, self.mongo)
        except BaseException:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        """Stop everything. Idempotent."""
        if self._closed:
            return
        self._closed = True
        await self.mongo.aclose()
        if self.dns is not None:
            await self.dns.aclose()
        if self._tls is not None:
            self._tls.close()
        await self.home.__aexit__(None, None, None)
        await self.aws.aclose()

    @property
    def mongodb_uri(self) -> str:
        """The URI a user would write for the topology (``replicaSet``, ``tls``, ``tlsCAFile``)."""
        if self._tls is not None:
            return f"{self.mongo.uri}&tlsCAFile={quote(self._tls.ca_file, safe='')}"
        return self.mongo.uri

    @property
    def tls_ca_file(self) -> str | None:
        """The CA file clients must trust (``tlsCAFile``), or None without TLS."""
        if isinstance(self.mongo, MongoCluster):
            return self.mongo.tls_ca_file
        return self._tls.ca_file if self._tls else None

    @property
    def mongodb_members(self) -> list[str]:
        """``HOST:PORT`` of every member (or router), as advertised."""
        if isinstance(self.mongo, MongoCluster):
            return self.mongo.hosts
        return [self.mongo.host_port]

    @property
    def mongodb_srv_uri(self) -> str | None:
        """``mongodb+srv://cluster0.pool.test/?authSource=%24external...`` with ``srv=True``."""
        if self.dns is None or not isinstance(self.mongo, MongoCluster):
            return None
        return srv_uri(SRV_ZONE, self.mongo)

    @property
    def dns_server(self) -> str | None:
        """``HOST:PORT`` of the DNS stand-in (UDP and TCP) with ``srv=True``."""
        if self.dns is None:
            return None
        host, port = self.dns.address
        return f"{host}:{port}"

    def srv_resolution(self) -> AbstractContextManager[None]:
        """Point this process's SRV and member-name lookups at the DNS stand-in.

        On asyncio's loop and on uvloop, for ``AsyncMongoClient``, Motor and
        ``MongoClient``. See :func:`~pool.standins.mongo.srv.loopback_resolution`
        (it raises ``LoopbackResolutionError`` on a loop it cannot redirect); a
        no-op without ``srv``.
        """
        if self.dns is None:
            return nullcontext()
        return loopback_resolution(self.dns.address, SRV_ZONE)

    def env_for(self, environment: str) -> dict[str, str]:
        """The standard variables a process in ``environment`` would see.

        ``"lambda"`` mints a fresh set living ``lambda_lifetime`` seconds.
        """
        if environment != "lambda":
            return self.aws.env_for(environment)
        creds = self.authority.mint(self.aws.role_arn, "lambda-function", self.lambda_lifetime)
        assert creds.session_token is not None and creds.expiration is not None
        return {
            "AWS_ACCESS_KEY_ID": creds.access_key_id,
            "AWS_SECRET_ACCESS_KEY": creds.secret_access_key,
            "AWS_SESSION_TOKEN": creds.session_token,
            "AWS_CREDENTIAL_EXPIRATION": aws_time(creds.expiration),
            "AWS_LAMBDA_FUNCTION_NAME": "standin-function",
            "AWS_REGION": self.aws.region,
            "AWS_DEFAULT_REGION": self.aws.region,
            "AWS_ENDPOINT_URL_STS": self.aws.sts_url,
        }

    def stats(self) -> dict[str, Any]:
        """Per-second counters: AWS endpoint calls and throttles, the server's auths.

        What ``python -m pool emulate --stats PATH`` writes when it stops.
        """
        return {"aws": self.throttle.snapshot(), "mongo": self.mongo.stats.snapshot()}

    def summary(self) -> dict[str, Any]:
        """What ``python -m pool emulate --json`` writes.

        The credentials and tokens in it are the stand-in's own throwaway ones.
        """
        envs = {env: self.env_for(env) for env in ENVIRONMENTS}
        topology: dict[str, Any] = {
            "mongodb_uri": self.mongodb_uri,
            "tls_ca_file": self.tls_ca_file,
            "mongodb_members": self.mongodb_members,
        }
        if self.dns is not None:
            topology |= {"mongodb_srv_uri": self.mongodb_srv_uri, "dns_server": self.dns_server}
        return {
            **topology,
            **self.aws.summary(),
            "lambda_env": envs["lambda"],
            "chained_role_arn": CHAINED_ROLE_ARN,
            "environments": envs,
            # A developer laptop: AWS_PROFILE plus HOME and the two files, per profile.
            "laptop": {name: self.home.env(name) for name in LAPTOP_PROFILES},
        }
