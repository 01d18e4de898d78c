"""Credentials from an AWS shared-config profile: a developer's laptop, a CI runner.

``ProfileSource("dev")`` (or ``AWS_PROFILE=dev``) resolves the profile the way
the AWS CLI does, in the order botocore 1.40.61's provider chain tries it:

1. ``role_arn`` with ``web_identity_token_file``: :class:`WebIdentitySource`;
2. ``role_arn`` with ``source_profile`` (resolved the same way, any depth;
   cycles refused) or ``credential_source`` (``Environment``,
   ``Ec2InstanceMetadata``, ``EcsContainer``): :class:`AssumeRoleSource`
   (``external_id``, ``role_session_name``, ``duration_seconds`` honoured);
3. ``sso_session`` / legacy ``sso_start_url``: IAM Identity Center, from the
   token ``aws sso login`` cached, refreshed through SSO OIDC for an
   ``sso_session`` (:mod:`pool.sources._sso`, :mod:`pool.sources._sso_oidc`);
4. static ``aws_access_key_id``/``aws_secret_access_key`` (credentials file,
   then config file);
5. ``credential_process``: the helper, run per fetch (:mod:`pool.sources._process`).

botocore's own config parser reads the files (in a worker thread, on the
first fetch); the calls are this library's sources, so every fetch returns
credentials with their exact expiry and no botocore refresh window, cache or
blocking ``Popen`` sits between the endpoint and :class:`pool.CredentialCache`.
The resolved chain is kept until ``aclose()``; the SSO token cache and
``credential_process`` are consulted at every fetch. STS calls go to the
regional endpoint of the profile's ``region`` (the variables win;
:mod:`pool.sources._sts_endpoint`).

An explicit profile (the argument or ``AWS_PROFILE``) is that profile and
nothing else: unknown, empty or broken, it fails, never falls back to another
identity. :func:`pool.sources.from_environment` uses the implicit ``default``
profile with a ``fallback`` (the compute-environment sources), as the SDKs do.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import anyio

from pool.credentials import Credentials
from pool.errors import ConfigurationError, NoCredentialsFoundError
from pool.sources._process import CredentialProcessSource
from pool.sources._shared_config import PROFILE, SharedConfig, load_shared_config
from pool.sources._sso import SsoSource
from pool.sources._sts_endpoint import resolve_sts_endpoint
from pool.sources.assume_role import AssumeRoleSource
from pool.sources.base import SourceBase, aclose_source
from pool.sources.static import StaticSource
from pool.sources.web_identity import WebIdentitySource

__all__ = ["ProfileSource"]

_CREDENTIAL_SOURCES = {"Environment", "Ec2InstanceMetadata", "EcsContainer"}


class ProfileSource(SourceBase):
    """Credentials for one shared-config profile (see the module docstring for the order).

    ``profile`` defaults to ``AWS_PROFILE``, then ``default``. ``environ``
    (default :data:`os.environ`) supplies ``AWS_CONFIG_FILE``,
    ``AWS_SHARED_CREDENTIALS_FILE``, ``HOME``, the region and endpoint variables,
    and the helper's environment. ``fallback`` (only for an implicit profile) is
    used when the profile or the files do not exist or hold no credentials.
    ``process_timeout`` bounds one ``credential_process`` run; ``sts_options``
    (``timeout``, ``connect_timeout``, ``attempts``, ``backoff``) go to the STS
    sources. ``origin`` and ``chain`` describe what was resolved (after a fetch).
    """

    def __init__(
        self,
        profile: str | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        fallback: SourceBase | None = None,
        name: str | None = None,
        process_timeout: float = 30.0,
        **sts_options: Any,
    ) -> None:
        super().__init__()
        self.environ = dict(os.environ if environ is None else environ)
        self.explicit = bool(profile or self.environ.get(PROFILE))
        self.profile = profile or self.environ.get(PROFILE) or "default"
        if self.explicit and fallback is not None:
            raise ConfigurationError("an explicit profile never falls back: drop fallback=")
        self.fallback = fallback
        self.name = name or f"profile:{self.profile}"
        self.process_timeout = process_timeout
        self.sts_options = sts_options
        self.chain: list[str] = []
        self.origin: str | None = None
        self._inner: SourceBase | None = None
        self._lock = anyio.Lock()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **options: Any) -> ProfileSource:
        """The profile ``AWS_PROFILE`` names (or ``default``), configured from ``environ``."""
        return cls(environ=environ, **options)

    def describe(self) -> str:
        """Where the credentials come from: profile, file and each step of the chain."""
        steps = " <- ".join(self.chain) if self.chain else "not resolved yet"
        return f"profile {self.profile!r} ({self.origin or 'no file'}): {steps}"

    async def _fetch(self) -> Credentials:
        inner = await self._resolved()
        creds = await inner._fetch()  # our own child: its fetch is logged as ours
        return creds

    async def _resolved(self) -> SourceBase:
        if self._inner is not None:
            return self._inner
        async with self._lock:
            if self._inner is None:
                config = await load_shared_config(self.environ, source=self.name)
                self._inner = self._top(config)
        return self._inner

    def _top(self, config: SharedConfig) -> SourceBase:
        if not self.explicit and self.profile not in config.profiles:
            return self._fall_back(f"no {self.profile!r} profile in the shared files")
        settings = config.profile(self.profile, source=self.name)
        self.origin = config.origin.get(self.profile)
        source = self._build(config, self.profile, settings, frozenset())
        if source is not None:
            return source
        if not self.explicit:
            return self._fall_back(f"profile {self.profile!r} holds no credentials")
        raise ConfigurationError(
            f"{self.name}: profile {self.profile!r} ({self.origin}) holds no credentials: no "
            "aws_access_key_id, credential_process, sso_session/sso_start_url or role_arn; "
            f"run 'aws configure --profile {self.profile}' or 'aws configure sso'"
        )

    def _fall_back(self, why: str) -> SourceBase:
        self.chain.append(why)
        if self.fallback is None:
            raise NoCredentialsFoundError(
                f"{self.name}: {why}, and no other source is configured", checked=[why]
            )
        self.chain.append(f"fallback {self.fallback.name}")
        return self.fallback

    def _build(
        self, config: SharedConfig, name: str, p: Mapping[str, str], seen: frozenset[str]
    ) -> SourceBase | None:
        role = p.get("role_arn")
        if not role:
            return self._leaf(config, name, p)
        if p.get("mfa_serial"):
            raise ConfigurationError(
                f"{self.name}: profile {name!r} needs an MFA code (mfa_serial), which a service "
                "cannot type; use a credential_process helper (aws-vault) or SSO instead"
            )
        where = config.origin.get(name, "?")
        sts: dict[str, Any] = {
            "endpoint": resolve_sts_endpoint(self.environ, p),
            "session_name": p.get("role_session_name"),
            "duration_seconds": _duration(p, self.name, name),
            "name": self.name,
            **self.sts_options,
        }
        if p.get("web_identity_token_file"):
            self.chain.append(f"{role} by web identity ({name}, {where})")
            token = os.path.expanduser(p["web_identity_token_file"])
            return WebIdentitySource(role_arn=role, token_file=token, **sts)
        base = self._base(config, name, p, seen)
        self.chain.append(f"{role} ({name}, {where})")
        return AssumeRoleSource(base, role_arn=role, external_id=p.get("external_id"), **sts)

    def _base(
        self, config: SharedConfig, name: str, p: Mapping[str, str], seen: frozenset[str]
    ) -> SourceBase:
        src_profile, cred_source = p.get("source_profile"), p.get("credential_source")
        if bool(src_profile) == bool(cred_source):
            raise ConfigurationError(
                f"{self.name}: profile {name!r} has role_arn and must have exactly one of "
                "source_profile, credential_source or web_identity_token_file"
            )
        if cred_source:
            return self._credential_source(name, cred_source)
        assert src_profile is not None
        if src_profile in seen | {name} and src_profile != name:
            raise ConfigurationError(
                f"{self.name}: source_profile loop through {sorted(seen | {name})}; fix the "
                "profiles' source_profile settings"
            )
        sp = config.profile(src_profile, source=self.name)
        # A profile naming itself as source_profile means "my static keys" (as botocore).
        found = (
            self._leaf(config, src_profile, sp)
            if src_profile == name
            else self._build(config, src_profile, sp, seen | {name})
        )
        if found is None:
            raise ConfigurationError(
                f"{self.name}: source_profile {src_profile!r} of profile {name!r} holds no "
                "credentials"
            )
        return found

    def _credential_source(self, name: str, kind: str) -> SourceBase:
        from pool.sources.container import ContainerSource
        from pool.sources.environment import EnvironmentSource
        from pool.sources.instance_metadata import InstanceMetadataSource

        if kind not in _CREDENTIAL_SOURCES:
            raise ConfigurationError(
                f"{self.name}: credential_source {kind!r} of profile {name!r} is not one of "
                f"{', '.join(sorted(_CREDENTIAL_SOURCES))}"
            )
        self.chain.append(f"credential_source {kind}")
        if kind == "Environment":
            return EnvironmentSource.from_env(self.environ)
        if kind == "EcsContainer":
            return ContainerSource.from_env(self.environ)
        return InstanceMetadataSource.from_env(self.environ)

    def _leaf(self, config: SharedConfig, name: str, p: Mapping[str, str]) -> SourceBase | None:
        where = config.origin.get(name, "?")
        if p.get("sso_session") or p.get("sso_start_url"):
            self.chain.append(f"IAM Identity Center ({name}, {where})")
            return SsoSource(profile=name, settings=p, sessions=config.sso_sessions,
                             environ=self.environ, name=self.name)  # fmt: skip
        if p.get("aws_access_key_id"):
            if not p.get("aws_secret_access_key"):
                raise ConfigurationError(
                    f"{self.name}: profile {name!r} ({where}) has aws_access_key_id but no "
                    "aws_secret_access_key"
                )
            self.chain.append(f"static keys ({name}, {where})")
            return StaticSource(access_key_id=p["aws_access_key_id"],
                                secret_access_key=p["aws_secret_access_key"],
                                session_token=p.get("aws_session_token") or None,
                                name=self.name)  # fmt: skip
        if p.get("credential_process"):
            self.chain.append(f"credential_process ({name}, {where})")
            # The helper inherits this process's environment, as botocore's does, with
            # the source's mapping on top (an explicit HOME, AWS_PROFILE, ...).
            return CredentialProcessSource(p["credential_process"], name=self.name, profile=name,
                                           environ={**os.environ, **self.environ},
                                           timeout=self.process_timeout)  # fmt: skip
        return None

    def _holds_resources(self) -> bool:
        return self._inner is not None

    async def _aclose(self) -> None:
        inner, self._inner = self._inner, None
        try:
            if inner is not None:
                await aclose_source(inner)
        finally:
            if self.fallback is not None and self.fallback is not inner:
                await aclose_source(self.fallback)


def _duration(p: Mapping[str, str], source: str, name: str) -> int | None:
    raw = p.get("duration_seconds")
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        raise ConfigurationError(
            f"{source}: duration_seconds {raw!r} of profile {name!r} is not an integer"
        ) from None
