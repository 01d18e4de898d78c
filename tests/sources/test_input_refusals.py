"""Inputs refused up front with a typed error naming what is wrong and how to fix it."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from pool import ClientPool
from pool.errors import ConfigurationError, CredentialFetchError
from pool.sources import base as sources_base
from pool.sources.arn import check_role_arn
from pool.sources.assume_role import AssumeRoleSource
from pool.sources.container import ContainerSource, validate_full_uri
from pool.sources.instance_metadata import InstanceMetadataSource
from pool.sources.static import StaticSource
from pool.sources.web_identity import WebIdentitySource
from tests.sources.test_instance_metadata import _doc, _mini_imds

FAST = {"connect_timeout": 0.5, "timeout": 1.0, "backoff": 0.01}
STATIC = StaticSource(access_key_id="AKIAEXAMPLEEXAMPLE01", secret_access_key="x" * 40)

# -- the URI -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("authMechanismProperties=AWS_SESSION_TOKEN:FwoGZXIvYXdzSECRET", "AWS_SESSION_TOKEN"),
        ("authMechanism=MONGODB-AWS&authMechanismProperties=AWS_SESSION_TOKEN:tok", "remove"),
        ("authmechanismproperties=SERVICE_NAME:x", "SERVICE_NAME"),
        ("authMechanism=SCRAM-SHA-256", "'SCRAM-SHA-256'"),
        ("authSource=admin", "authSource='admin'"),
        ("tlsCertificateKeyFilePassword=hunter2", "tlsCertificateKeyFilePassword"),
    ],
)
def test_credential_bearing_or_contradicting_uri_options_are_refused(
    query: str, named: str
) -> None:
    """A token, a password or another mechanism/authSource in the URI: refused, secret not shown."""
    with pytest.raises(ConfigurationError) as info:
        ClientPool(f"mongodb://127.0.0.1:1/?{query}", credentials=STATIC)
    message = str(info.value)
    assert named in message
    assert (
        "FwoGZXIvYXdzSECRET" not in message and "hunter2" not in message and ":tok" not in message
    )


def test_uri_options_repeating_the_pools_own_are_accepted() -> None:
    """authMechanism=MONGODB-AWS and authSource=$external only repeat what the pool sets."""
    ClientPool("mongodb://h/?authMechanism=MONGODB-AWS&authSource=%24external", credentials=STATIC)


@pytest.mark.parametrize(
    ("kwargs", "named", "not_named"),
    [
        ({"warmup_timeout": 0}, "warmup_timeout must be > 0 seconds; got 0", "close_timeout"),
        ({"close_timeout": -1}, "close_timeout must be >= 0 seconds; got -1", "warmup_timeout"),
    ],
)
def test_each_timeout_message_names_only_the_wrong_value(
    kwargs: dict[str, float], named: str, not_named: str
) -> None:
    """One message per option: the one that is wrong, with its value."""
    with pytest.raises(ConfigurationError) as info:
        ClientPool("mongodb://h/", credentials=STATIC, **kwargs)  # type: ignore[arg-type]
    assert named in str(info.value) and not_named not in str(info.value)


# -- the container full URI --------------------------------------------------

BOTOCORE_CASES = [
    "https://evil.test/",
    "HtTpS://evil.test/creds",
    "https://169.254.169.254/",
    "http://169.254.169.254/",
    "https://creds.example.com/v1",
    "http://127.0.0.1:8080/creds",
    "http://127.0.0.2/",
    "http://[::1]/",
    "https://localhost:8443/",
    "http://169.254.170.2/v2/credentials",
    "http://169.254.170.23/v1/credentials",
    "http://[fd00:ec2::23]/v1/credentials",
]


def _botocore_allows(uri: str, *, ignore_https: bool) -> bool:
    """What the installed botocore's ContainerMetadataFetcher says of ``uri``.

    With ``ignore_https`` the URI is judged as if it were plain http: botocore
    1.43 lets https reach any host, 1.40.61 did not, and this library keeps the
    narrower rule (see pool.sources.container.validate_full_uri).
    """
    from botocore.utils import ContainerMetadataFetcher

    if ignore_https and uri.lower().startswith("https://"):
        uri = "http://" + uri[len("https://") :]
    try:
        ContainerMetadataFetcher()._validate_allowed_url(uri)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("uri", BOTOCORE_CASES)
def test_full_uri_rule_is_botocores_host_list_whatever_the_scheme(uri: str) -> None:
    """Allowed exactly when botocore allows it as plain http (botocore 1.40.61's rule)."""
    try:
        validate_full_uri(uri)
        ours = True
    except ConfigurationError as exc:
        assert "AWS_CONTAINER_CREDENTIALS_FULL_URI" in str(exc)
        ours = False
    assert ours is _botocore_allows(uri, ignore_https=True)


@pytest.mark.parametrize(
    "uri", ["https://evil.test/", "HtTpS://evil.test/creds", "https://169.254.169.254/"]
)
def test_https_to_other_hosts_is_refused_even_where_newer_botocore_allows_it(uri: str) -> None:
    """https to a host off the list never gets the container token, whatever botocore's version."""
    with pytest.raises(ConfigurationError, match="not allowed"):
        validate_full_uri(uri)


@pytest.mark.parametrize("uri", ["http://127.0.0.1:99999/", "http://127.0.0.1:abc/"])
def test_bad_ports_are_configuration_errors(uri: str) -> None:
    """A port out of range or not a number: ConfigurationError from the constructor and from_env."""
    with pytest.raises(ConfigurationError, match="port"):
        ContainerSource(full_uri=uri)
    with pytest.raises(ConfigurationError, match="AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        ContainerSource.from_env({"AWS_CONTAINER_CREDENTIALS_FULL_URI": uri})


def test_check_prints_the_reason_for_a_bad_port() -> None:
    """`python -m pool check` names the bad URI, not 'Unexpected error'."""
    env = {
        **os.environ,
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:99999/",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    done = subprocess.run(
        [sys.executable, "-m", "pool", "check", "--source", "ecs", "--uri", "mongodb://127.0.0.1:1/"],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )  # fmt: skip
    assert done.returncode != 0
    assert "Unexpected error" not in done.stdout
    assert "invalid port" in done.stdout and "Fix the variable" in done.stdout


# -- token files -------------------------------------------------------------


def _pod_env(path: Path) -> dict[str, str]:
    return {
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:9/v1/credentials",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(path),
    }


async def _fetch_error(path: Path) -> CredentialFetchError:
    async with ContainerSource.from_env(_pod_env(path), attempts=1, **FAST) as source:
        with pytest.raises(CredentialFetchError) as info:
            await source.fetch()
    assert info.value.retryable is False and str(path) in str(info.value)
    return info.value


async def test_a_fifo_token_file_is_refused_without_blocking(tmp_path: Path) -> None:
    """A FIFO at the token path fails at once (no writer needed), naming the path."""
    fifo = tmp_path / "token"
    os.mkfifo(fifo)
    assert "not a regular file" in str(await _fetch_error(fifo))


async def test_an_oversized_token_file_is_refused(tmp_path: Path) -> None:
    """A token file above the cap is refused, the cap named, at most cap+1 bytes read."""
    big = tmp_path / "token"
    with big.open("wb") as fh:
        fh.truncate(512 * 1024 * 1024)  # sparse: 512 MiB that cost no disk
    error = await _fetch_error(big)
    assert error.code == "TokenFileTooLarge" and str(sources_base.MAX_TOKEN_BYTES) in str(error)


@pytest.mark.parametrize("char", ["\x00", "\x7f"])
async def test_control_characters_in_a_token_name_the_token_file(tmp_path: Path, char: str) -> None:
    """NUL or DEL in a token file: an error naming the file and the character, not InvalidURL."""
    path = tmp_path / "token"
    path.write_text(f"abc{char}def")
    error = await _fetch_error(path)
    assert error.code == "TokenFileInvalid" and f"U+{ord(char):04X}" in str(error)


def test_control_characters_in_a_token_variable_name_the_variable() -> None:
    """NUL in AWS_CONTAINER_AUTHORIZATION_TOKEN: ConfigurationError naming the variable."""
    env = {
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:9/",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN": "abc\x00def",
    }
    with pytest.raises(ConfigurationError, match=r"AWS_CONTAINER_AUTHORIZATION_TOKEN.*U\+0000"):
        ContainerSource.from_env(env)


async def test_a_hung_token_read_times_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A read that never returns (a hung NFS mount) fails after the fetch timeout."""
    release = threading.Event()

    def hung(path: str) -> bytes:
        release.wait(10)
        return b"never"

    monkeypatch.setattr(sources_base, "_read_capped", hung)
    try:
        with pytest.raises(CredentialFetchError, match=r"took over 0\.05 s"):
            await sources_base.read_token_file(
                str(tmp_path / "t"), source="s", what="token file", hint="h", read_timeout=0.05
            )
    finally:
        release.set()


# -- IMDS role name, role ARNs ------------------------------------------------


async def test_a_garbage_role_listing_is_not_used_as_a_role_name(mini) -> None:
    """A role list that is not an IAM role name is refused before the credentials request."""
    mini.handler = _mini_imds((200, "<html>oops</html>"), (200, _doc()))
    async with InstanceMetadataSource(endpoint=mini.url, attempts=1, **FAST) as source:
        with pytest.raises(CredentialFetchError, match="not an IAM role name") as info:
            await source.fetch()
    assert info.value.code == "MalformedResponse"
    assert [p for _, p, _ in mini.requests if "security-credentials/" in p][-1].endswith("/")


def test_a_bad_role_name_argument_is_refused() -> None:
    """InstanceMetadataSource(role_name=...) is checked against IAM's characters and length."""
    with pytest.raises(ConfigurationError, match="role_name 'a/b'"):
        InstanceMetadataSource(role_name="a/b")
    with pytest.raises(ConfigurationError, match="role_name"):
        InstanceMetadataSource(role_name="r" * 65)


@pytest.mark.parametrize(
    ("arn", "problem"),
    [
        ("arn:aws:iam::12345:user/bob", "account '12345'"),
        ("arn:aws:iam::123456789012:user/bob", "'user' resource"),
        ("arn:aws:sts::123456789012:assumed-role/app/s", "service 'sts'"),
        ("arn:nope:iam::123456789012:role/app", "partition 'nope'"),
        ("arn:aws:iam:us-east-1:123456789012:role/app", "region 'us-east-1'"),
        ("arn:aws:iam::123456789012:role/", "not a role"),
        ("arn:aws:iam::123456789012:role/bad name", "role name 'bad name'"),
        ("role/app", "not an ARN"),
    ],
)
def test_role_arns_are_validated_before_any_request(arn: str, problem: str) -> None:
    """Partition, service, region, 12-digit account, role/ resource and name each named."""
    with pytest.raises(ConfigurationError) as info:
        AssumeRoleSource(STATIC, role_arn=arn, endpoint_url="http://127.0.0.1:9/")
    assert problem in str(info.value) and "role_arn" in str(info.value)


def test_role_arn_messages_name_where_the_value_came_from(tmp_path: Path) -> None:
    """From AWS_ROLE_ARN the message names AWS_ROLE_ARN; from the argument, role_arn."""
    env = {
        "AWS_WEB_IDENTITY_TOKEN_FILE": str(tmp_path / "t"),
        "AWS_ROLE_ARN": "arn:aws:iam::1:role/x",
    }
    with pytest.raises(ConfigurationError) as info:
        WebIdentitySource.from_env(env)
    assert "AWS_ROLE_ARN 'arn:aws:iam::1:role/x'" in str(info.value)
    assert "role_arn argument" not in str(info.value)
    with pytest.raises(ConfigurationError, match="role_arn 'arn:aws:iam::1:role/x'"):
        WebIdentitySource(role_arn="arn:aws:iam::1:role/x", token_file=tmp_path / "t")


def test_valid_role_arns_pass() -> None:
    """Role ARNs with paths and every partition are accepted unchanged."""
    for arn in (
        "arn:aws:iam::123456789012:role/app",
        "arn:aws-cn:iam::123456789012:role/team/app+ci=1,x.y@z_-",
        "arn:aws-us-gov:iam::123456789012:role/a/b/c/app",
    ):
        assert check_role_arn(arn, source="t") == arn


async def test_web_identity_token_file_read_obeys_the_fetch_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """WebIdentitySource gives its timeout to the token read; a FIFO is refused at once."""
    seen: list[float | None] = []
    real = sources_base.read_token_file

    async def spy(*args: object, read_timeout: float | None = None, **kw: object) -> str:
        seen.append(read_timeout)
        return await real(*args, read_timeout=read_timeout, **kw)  # type: ignore[arg-type]

    import pool.sources.web_identity as web_identity

    monkeypatch.setattr(web_identity, "read_token_file", spy)
    fifo = tmp_path / "token"
    os.mkfifo(fifo)
    source = WebIdentitySource(
        role_arn="arn:aws:iam::123456789012:role/app", token_file=fifo, timeout=0.7,
        endpoint_url="http://127.0.0.1:9/",
    )  # fmt: skip
    async with source:
        with pytest.raises(CredentialFetchError, match="not a regular file"):
            await source.fetch()
    assert seen == [0.7]
