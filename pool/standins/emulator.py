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

from typing import Any

from pool._internal.resource import AsyncResource
from pool.standins.authority import CredentialAuthority, aws_time
from pool.standins.aws import ENVIRONMENTS, AwsStandIns
from pool.standins.faults import FaultInjector
from pool.standins.laptop import DeveloperHome
from pool.standins.mongo.server import MongoStandIn

__all__ = ["CHAINED_ROLE_ARN", "ENVIRONMENTS", "LAPTOP_PROFILES", "Emulator"]

#: The profiles of the stand-in developer home that ``summary()["laptop"]`` exports.
LAPTOP_PROFILES = ("sso", "process", "static", "chained")

#: A second role, mapped to database user ``chained``, for role-chaining
#: (AssumeRole on top of another source) demos and tests.
CHAINED_ROLE_ARN = "arn:aws:iam::123456789012:role/standin-chained"


class Emulator(AsyncResource):
    """The AWS endpoints and the MongoDB server on loopback, one authority behind both.

    ``lifetime`` is the lifetime in seconds of every credential set the
    endpoints mint (short lifetimes let tests and the demo watch rotations);
    ``command_delay`` adds per-command latency at the MongoDB server.
    ``lambda_lifetime`` is the lifetime of the credential set that
    :meth:`env_for` ``("lambda")`` puts in the variables: Lambda's variables
    hold one set for the sandbox's whole life (hours), so it defaults to an
    hour whatever ``lifetime`` is. The server maps the default role to
    database user ``app`` and :data:`CHAINED_ROLE_ARN` to ``chained``.
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
    ) -> None:
        self.lambda_lifetime = lambda_lifetime
        self.faults = faults if faults is not None else FaultInjector()
        self.authority = CredentialAuthority(
            default_lifetime=lifetime,
            min_duration=min(900.0, lifetime) if min_duration is None else min_duration,
        )
        self.aws = AwsStandIns(
            self.authority,
            lifetime=lifetime,
            refresh_margin=refresh_margin,
            faults=self.faults,
            imdsv1=imdsv1,
        )
        self.mongo = MongoStandIn(
            self.authority,
            users={self.authority.default_role_arn: "app", CHAINED_ROLE_ARN: "chained"},
            faults=self.faults,
            command_delay=command_delay,
        )
        # A developer's home (~/.aws with SSO, credential_process, keys, role chains)
        # in a temporary directory, written at start().
        self.home = DeveloperHome(self.aws)
        self._closed = False

    def __repr__(self) -> str:
        return f"<Emulator aws={self.aws!r} mongo={self.mongo!r}>"

    async def start(self, host: str = "127.0.0.1", mongo_port: int = 0) -> None:
        """Start the AWS endpoints and the MongoDB server on ``host``."""
        try:
            await self.aws.start(host)
            await self.home.__aenter__()
            await self.mongo.start(host, mongo_port)
        except BaseException:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        """Stop everything. Idempotent."""
        if self._closed:
            return
        self._closed = True
        await self.mongo.aclose()
        await self.home.__aexit__(None, None, None)
        await self.aws.aclose()

    @property
    def mongodb_uri(self) -> str:
        return self.mongo.uri

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

    def summary(self) -> dict[str, Any]:
        """What ``python -m pool emulate --json`` writes.

        The credentials and tokens in it are the stand-in's own throwaway ones.
        """
        envs = {env: self.env_for(env) for env in ENVIRONMENTS}
        return {
            "mongodb_uri": self.mongodb_uri,
            **self.aws.summary(),
            "lambda_env": envs["lambda"],
            "chained_role_arn": CHAINED_ROLE_ARN,
            "environments": envs,
            # A developer laptop: AWS_PROFILE plus HOME and the two files, per profile.
            "laptop": {name: self.home.env(name) for name in LAPTOP_PROFILES},
        }
