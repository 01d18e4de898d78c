"""The AWS shared configuration files, read the way botocore reads them, off the loop.

``AWS_CONFIG_FILE`` (default ``~/.aws/config``: ``[default]``, ``[profile NAME]``,
``[sso-session NAME]``) and ``AWS_SHARED_CREDENTIALS_FILE`` (default
``~/.aws/credentials``: ``[NAME]``). Parsing is botocore's own
(``botocore.configloader.raw_config_parse`` and ``build_profile_map``, read from
botocore 1.40.61), so profile names, ``~`` expansion and nested sections mean
what they mean to the AWS CLI; like botocore's ``Session.full_config``, a
profile's keys in the credentials file win over the same keys in the config
file. ``~`` is the mapping's ``HOME`` (``USERPROFILE`` on Windows), so tests
with a temporary home never see the real ``~/.aws``.

:func:`load_shared_config` runs in a worker thread (it imports botocore and
reads files); :func:`has_shared_files` is a ``stat`` for detection.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio

from pool.errors import ConfigurationError

__all__ = ["SharedConfig", "has_shared_files", "load_shared_config", "shared_paths"]

CONFIG_FILE = "AWS_CONFIG_FILE"
CREDENTIALS_FILE = "AWS_SHARED_CREDENTIALS_FILE"
PROFILE = "AWS_PROFILE"


def _home(environ: Mapping[str, str]) -> str | None:
    return environ.get("HOME") or environ.get("USERPROFILE") or None


def _expand(path: str, environ: Mapping[str, str]) -> str:
    home = _home(environ)
    if home and (path == "~" or path.startswith(("~/", "~" + os.sep))):
        return os.path.join(home, path[2:])
    return path


def shared_paths(environ: Mapping[str, str]) -> tuple[str | None, str | None]:
    """(config file, credentials file) paths; None where neither the variable nor a home is set."""
    home = _home(environ)
    config = environ.get(CONFIG_FILE) or (os.path.join(home, ".aws", "config") if home else None)
    creds = environ.get(CREDENTIALS_FILE) or (
        os.path.join(home, ".aws", "credentials") if home else None
    )
    return (
        _expand(config, environ) if config else None,
        _expand(creds, environ) if creds else None,
    )


def has_shared_files(environ: Mapping[str, str]) -> bool:
    """Whether either shared file exists (two ``stat`` calls; nothing is read)."""
    return any(p is not None and os.path.isfile(p) for p in shared_paths(environ))


@dataclass(frozen=True)
class SharedConfig:
    """Both files parsed: ``profiles[name]`` merged (credentials file wins per key),
    ``sso_sessions[name]``, and where each profile's keys came from (``origin``)."""

    config_path: str | None
    credentials_path: str | None
    profiles: dict[str, dict[str, str]] = field(default_factory=dict)
    sso_sessions: dict[str, dict[str, str]] = field(default_factory=dict)
    origin: dict[str, str] = field(default_factory=dict)

    def profile(self, name: str, *, source: str) -> dict[str, str]:
        """The profile's settings; :class:`pool.ConfigurationError` naming the files if absent."""
        if name not in self.profiles:
            files = " and ".join(p for p in (self.config_path, self.credentials_path) if p)
            known = ", ".join(sorted(self.profiles)[:20]) or "none"
            raise ConfigurationError(
                f"{source}: profile {name!r} is not in {files or 'any shared config file'} "
                f"(profiles found: {known}); check AWS_PROFILE and AWS_CONFIG_FILE/"
                "AWS_SHARED_CREDENTIALS_FILE, or run 'aws configure --profile "
                f"{name}'"
            )
        return self.profiles[name]


def _parse(path: str | None, *, is_config: bool, source: str) -> dict[str, Any]:
    if path is None or not os.path.isfile(path):
        return {}
    from botocore import configloader
    from botocore.exceptions import ConfigParseError

    try:
        raw = configloader.raw_config_parse(path)
    except (ConfigParseError, UnicodeDecodeError) as exc:
        # The parser's message quotes the offending line, which may hold a key: not shown.
        raise ConfigurationError(
            f"{source}: {path} is not a valid AWS {'config' if is_config else 'credentials'} "
            f"file ({type(exc).__name__}); fix its syntax ([profile NAME] sections of "
            "key = value lines)"
        ) from None
    except OSError as exc:
        raise ConfigurationError(
            f"{source}: cannot read {path}: {exc.strerror or type(exc).__name__}"
        ) from None
    return configloader.build_profile_map(raw) if is_config else {"profiles": raw}


def _load(environ: Mapping[str, str], source: str) -> SharedConfig:
    config_path, creds_path = shared_paths(environ)
    config = _parse(config_path, is_config=True, source=source)
    creds = _parse(creds_path, is_config=False, source=source)
    profiles: dict[str, dict[str, str]] = {}
    origin: dict[str, str] = {}
    for path, parsed in ((config_path, config), (creds_path, creds)):
        for name, values in parsed.get("profiles", {}).items():
            flat = {k: v for k, v in values.items() if isinstance(v, str)}
            profiles.setdefault(name, {}).update(flat)
            if path is not None:
                origin[name] = f"{origin[name]} + {path}" if name in origin else path
    sessions = {
        n: {k: v for k, v in s.items() if isinstance(v, str)}
        for n, s in config.get("sso_sessions", {}).items()
    }
    return SharedConfig(config_path, creds_path, profiles, sessions, origin)


async def load_shared_config(environ: Mapping[str, str], *, source: str) -> SharedConfig:
    """Both files, parsed in a worker thread; missing files count as empty."""
    return await anyio.to_thread.run_sync(_load, dict(environ), source)
