"""Pick the credential source the environment provides, in the MongoDB auth spec's order.

The MONGODB-AWS section of the MongoDB authentication specification orders the
lookup as: environment variables (Lambda), then web identity (EKS IRSA), then
the container endpoint (ECS, EKS Pod Identity), then EC2 instance metadata.
The shared-config profile goes where the AWS SDKs' default chain puts it
(botocore 1.40.61 ``create_credential_resolver``: env, then the profile's
role/SSO/keys/process, then web identity from the variables, container, IMDS):
right after the environment variables. An explicit ``AWS_PROFILE`` is that
profile and nothing else, ahead of the environment variables too; without it
the ``default`` profile is tried first and the compute-environment sources are
its fall-back, decided at the first fetch.
Detection reads the mapping and checks whether the two shared files exist; it
sends no request and reads no file's contents.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

from pool._internal.log import get_logger
from pool.credentials import Credentials
from pool.errors import CredentialFetchError, NoAwsEnvironmentError, NoCredentialsFoundError
from pool.sources._shared_config import PROFILE, has_shared_files
from pool.sources.base import SourceBase
from pool.sources.container import FULL_URI, RELATIVE_URI, ContainerSource
from pool.sources.environment import ACCESS_KEY, EnvironmentSource
from pool.sources.instance_metadata import DISABLED_VAR, InstanceMetadataSource, metadata_disabled
from pool.sources.profile import ProfileSource
from pool.sources.web_identity import TOKEN_FILE, WebIdentitySource

__all__ = ["from_environment"]

_log = get_logger("pool.sources")


# CredentialFetchError codes meaning "nothing answered at the metadata address".
_UNREACHABLE = ("ConnectionError", "Timeout", "TokenTimeout")


class _LastResortMetadata(InstanceMetadataSource):
    """IMDS chosen only because nothing else is configured (the spec's last resort).

    Off AWS (a laptop, CI) nothing answers at the metadata address, which is
    the normal outcome; IMDS's own hints (hop limit, metadata options) would
    point the wrong way, so that failure says what was checked instead.
    """

    checked: tuple[str, ...] = ()

    async def _fetch(self) -> Credentials:
        try:
            return await super()._fetch()
        except CredentialFetchError as exc:
            if exc.code not in _UNREACHABLE:
                raise
            raise NoAwsEnvironmentError(
                "no AWS credentials found: nothing is configured in this environment and the "
                f"EC2 instance metadata service at {self.endpoint} did not answer ({exc.code}); "
                "off AWS (a laptop, CI) that is expected. Set AWS_ACCESS_KEY_ID/"
                "AWS_SECRET_ACCESS_KEY or AWS_PROFILE, run with an IAM role (ECS task role, "
                "EKS IRSA or Pod Identity, EC2 instance profile), or pass a source explicitly; "
                "AWS_EC2_METADATA_DISABLED=true skips this lookup. On EC2 inside a container, "
                "a token PUT timeout is the IMDSv2 hop-limit symptom "
                "(--http-put-response-hop-limit 2). Checked:",
                checked=[*self.checked, f"EC2 instance metadata: {self.endpoint} did not answer"],
                code=exc.code,
            ) from exc


def _environment(env: Mapping[str, str], include_ec2: bool) -> str | None:
    return None if env.get(ACCESS_KEY) else f"environment variables: {ACCESS_KEY} is not set"


def _web_identity(env: Mapping[str, str], include_ec2: bool) -> str | None:
    return None if env.get(TOKEN_FILE) else f"web identity (EKS IRSA): {TOKEN_FILE} is not set"


def _container(env: Mapping[str, str], include_ec2: bool) -> str | None:
    if env.get(RELATIVE_URI) or env.get(FULL_URI):
        return None
    return (
        f"container endpoint (ECS, EKS Pod Identity): neither {RELATIVE_URI} nor {FULL_URI} is set"
    )


def _instance_metadata(env: Mapping[str, str], include_ec2: bool) -> str | None:
    if not include_ec2:
        return "EC2 instance metadata: not considered (include_ec2=False)"
    if metadata_disabled(env):
        return f"EC2 instance metadata: disabled by {DISABLED_VAR}=true"
    return None


_NO_PROFILE = "shared config: AWS_PROFILE is not set and no ~/.aws/config or ~/.aws/credentials"
# (why this source does not apply, or None; how to build it), in the spec's order.
_ORDER: tuple[
    tuple[
        Callable[[Mapping[str, str], bool], str | None], Callable[[Mapping[str, str]], SourceBase]
    ],
    ...,
] = (
    (_environment, EnvironmentSource.from_env),
    (_web_identity, WebIdentitySource.from_env),
    (_container, ContainerSource.from_env),
    (_instance_metadata, _LastResortMetadata.from_env),
)


def _compute(env: Mapping[str, str], include_ec2: bool, checked: list[str]) -> SourceBase | None:
    """The first compute-environment source that applies; reasons for the others in ``checked``."""
    for skipped, build in _ORDER[1:]:
        reason = skipped(env, include_ec2)
        if reason is None:
            source = build(env)
            if isinstance(source, _LastResortMetadata):
                source.checked = tuple(checked)  # a list the caller may still extend
            return source
        checked.append(reason)
    return None


def from_environment(
    environ: Mapping[str, str] | None = None,
    *,
    include_ec2: bool = True,
    include_profile: bool = True,
) -> SourceBase:
    """The first source configured in ``environ`` (default :data:`os.environ`).

    1. ``AWS_PROFILE`` set: :class:`ProfileSource` for that profile, and nothing
       else: no fall-back to another identity, and it wins over
       ``AWS_ACCESS_KEY_ID`` (logged as a warning; botocore would take the keys,
       which is how a stale shell variable silently becomes the identity);
    2. ``AWS_ACCESS_KEY_ID`` set: :class:`EnvironmentSource`; otherwise, when
       ``~/.aws/config`` or ``~/.aws/credentials`` (or ``AWS_CONFIG_FILE``/
       ``AWS_SHARED_CREDENTIALS_FILE``) exists and ``include_profile``: a
       :class:`ProfileSource` for ``default`` whose fall-back is the first of
       3-5 that applies (used when ``default`` holds no credentials);
    3. ``AWS_WEB_IDENTITY_TOKEN_FILE`` set: :class:`WebIdentitySource`;
    4. ``AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`` or ``..._FULL_URI`` set:
       :class:`ContainerSource`;
    5. otherwise, unless ``AWS_EC2_METADATA_DISABLED=true`` or
       ``include_ec2=False``: :class:`InstanceMetadataSource` (whether IMDS is
       reachable shows at the first fetch). When IMDS does not answer (the
       normal case off AWS: a laptop, CI), that fetch raises
       :class:`pool.NoAwsEnvironmentError` (a :class:`pool.NoCredentialsFoundError`)
       listing everything checked, instead of an EC2-specific error.

    A source that is selected but misconfigured (a key id without a secret, a
    token file without ``AWS_ROLE_ARN``, a refused container URI) raises
    :class:`pool.ConfigurationError` rather than silently falling through.
    When nothing applies, :class:`pool.NoCredentialsFoundError` lists what was
    checked. The returned source is not yet used; close it when done.
    """
    env = os.environ if environ is None else environ
    checked: list[str] = []
    source: SourceBase | None = None
    if include_profile and env.get(PROFILE):
        if env.get(ACCESS_KEY):
            # The SDKs would take the keys; an explicit profile is taken at its word.
            _log.warning("credentials.source.profile_over_keys", profile=env[PROFILE],
                         ignored=ACCESS_KEY)  # fmt: skip
        source = ProfileSource(environ=env)
    elif env.get(ACCESS_KEY):
        source = EnvironmentSource.from_env(env)
    else:
        checked.append(_environment(env, include_ec2) or "")
        if include_profile and has_shared_files(env):
            source = ProfileSource(environ=env, fallback=_compute(env, include_ec2, checked))
        else:
            checked.append(_NO_PROFILE if include_profile else "profile: not considered")
            source = _compute(env, include_ec2, checked)
    if source is not None:
        _log.info("credentials.source.detected", source=source.name, skipped=checked)
        return source
    raise NoCredentialsFoundError(
        "no AWS credentials found in this environment; set AWS_ACCESS_KEY_ID/"
        "AWS_SECRET_ACCESS_KEY, run with an IAM role (ECS, EKS, EC2), or pass a source "
        "explicitly. Checked:",
        checked=checked,
    )
