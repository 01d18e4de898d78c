"""``credential_process``: run the profile's helper (aws-vault, granted, 1Password...) per fetch.

The command line is split like botocore splits it (``shlex.split`` on POSIX;
no shell) and started and waited for in worker threads, so the loop never
waits on it (not even on the fork/exec, milliseconds in a large process).
It must print one JSON object on stdout, as the AWS CLI
documents: ``{"Version": 1, "AccessKeyId": ..., "SecretAccessKey": ...,
"SessionToken": ..., "Expiration": "2024-05-01T12:00:00Z"}`` (``SessionToken``
and ``Expiration`` optional: without ``Expiration`` the keys never expire).

A helper that outlives ``timeout`` is killed (a hung helper would otherwise
block every refresh); a non-zero exit is an error quoting its stderr,
redacted; anything else than that JSON is an error naming what was wrong,
never the output itself (it may hold keys).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import threading
from collections.abc import Mapping

import anyio

from pool._internal.redact import redact
from pool._internal.shield import finish
from pool.credentials import Credentials
from pool.errors import ConfigurationError, CredentialFetchError
from pool.sources.base import SourceBase, ensure_not_expired, parse_expiration

__all__ = ["CredentialProcessSource"]

MAX_OUTPUT = 64 * 1024


class CredentialProcessSource(SourceBase):
    """Credentials printed by ``command`` (a profile's ``credential_process``).

    ``environ`` is the helper's environment (default: this process's);
    ``timeout`` bounds one run, after which the helper is killed.
    """

    def __init__(
        self,
        command: str,
        *,
        name: str = "credential_process",
        profile: str | None = None,
        environ: Mapping[str, str] | None = None,
        timeout: float = 30.0,
    ) -> None:
        super().__init__()
        self.name = name
        self.profile = profile
        try:
            self.argv = shlex.split(command) if os.name != "nt" else [command]
        except ValueError as exc:
            raise ConfigurationError(
                f"{name}: credential_process of profile {profile!r} cannot be split into a "
                f"command line ({exc}); fix its quoting"
            ) from None
        if not self.argv:
            raise ConfigurationError(f"{name}: credential_process of profile {profile!r} is empty")
        self.environ = dict(environ) if environ is not None else None
        self.timeout = timeout

    def _error(self, what: str, code: str, *, retryable: bool = False) -> CredentialFetchError:
        return CredentialFetchError(
            f"{self.name}: credential_process {self.argv[0]!r} (profile {self.profile!r}) {what}",
            source=self.name,
            retryable=retryable,
            code=code,
        )

    def _start(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self.environ,
        )

    async def _run(self) -> tuple[int, bytes, bytes]:
        # Started and waited for in worker threads, not with asyncio's subprocess
        # support: Popen's fork/exec of a large process runs on the calling thread
        # and was measured to hold the event loop 5-28 ms per start.
        proc = await self._spawn()
        out, err = await self._wait(proc)
        return proc.returncode, out, err

    async def _spawn(self) -> subprocess.Popen[bytes]:
        """Popen in a worker thread; a cancellation meanwhile kills what it started."""
        started: list[subprocess.Popen[bytes]] = []
        start_ended = threading.Event()

        def start() -> subprocess.Popen[bytes]:
            try:
                started.append(self._start())
                return started[0]
            finally:
                start_ended.set()

        try:
            return await anyio.to_thread.run_sync(start)
        except OSError as exc:
            raise self._error(
                f"could not be started: {exc.strerror or type(exc).__name__}; check the path "
                "and that it is executable",
                "ProcessNotStarted",
            ) from None
        except BaseException:
            # Cancelled while Popen ran in its thread (asyncio's cancellation can get
            # through anyio's shield): wait for it, then kill what it started.
            await finish(anyio.to_thread.run_sync(start_ended.wait))
            for orphan in started:
                orphan.kill()
                await finish(anyio.to_thread.run_sync(orphan.communicate))
            raise

    async def _wait(self, proc: subprocess.Popen[bytes]) -> tuple[bytes, bytes]:
        """Its output, read in a worker thread; timed out or cancelled, it is killed."""
        done = threading.Event()

        def communicate() -> tuple[bytes, bytes]:
            try:
                return proc.communicate(timeout=self.timeout)
            finally:
                done.set()

        try:
            return await anyio.to_thread.run_sync(communicate, abandon_on_cancel=True)
        except BaseException:
            # Timed out or cancelled: the helper must not outlive the fetch. The kill
            # also ends a cancelled (abandoned) communicate(); only then is the helper
            # reaped here, since two threads reading its pipes would race.
            proc.kill()
            await finish(anyio.to_thread.run_sync(_reap, proc, done))
            raise

    async def _fetch(self) -> Credentials:
        try:
            status, out, err = await self._run()
        except subprocess.TimeoutExpired:
            raise self._error(
                f"did not finish within {self.timeout:g} s and was killed; is it waiting for "
                "input (a login prompt, an MFA code)? Run it by hand once",
                "ProcessTimeout",
                retryable=True,
            ) from None
        if status != 0:
            text = redact(err.decode("utf-8", "replace").strip(), limit=300) or "(no stderr)"
            raise self._error(f"exited with status {status}: {text}", "ProcessFailed")
        return self._parse(out)

    def _parse(self, out: bytes) -> Credentials:
        if len(out) > MAX_OUTPUT:
            raise self._error("printed more than 64 KiB; that is not credentials", "BadOutput")
        try:
            doc = json.loads(out)
        except ValueError:
            raise self._error(
                "printed something that is not JSON; it must print the credential_process "
                "JSON object on stdout (Version, AccessKeyId, SecretAccessKey)",
                "BadOutput",
            ) from None
        if not isinstance(doc, dict) or doc.get("Version") != 1:
            raise self._error(
                'printed JSON without "Version": 1; only version 1 of the format exists',
                "BadOutput",
            )
        missing = [f for f in ("AccessKeyId", "SecretAccessKey") if not isinstance(doc.get(f), str)]
        token = doc.get("SessionToken")
        if missing or (token is not None and not isinstance(token, str)):
            lacking = ", ".join(missing) or "a string SessionToken"
            raise self._error(f"printed JSON without {lacking}", "BadOutput")
        expiration = None
        if doc.get("Expiration") is not None:
            try:
                expiration = parse_expiration(doc["Expiration"], what="Expiration")
            except ValueError as exc:
                raise self._error(f"printed a bad Expiration: {exc}", "BadOutput") from None
        creds = Credentials(
            access_key_id=doc["AccessKeyId"],
            secret_access_key=doc["SecretAccessKey"],
            session_token=token or None,
            expiration=expiration,
            source=self.name,
        )
        if expiration is None:
            return creds
        return ensure_not_expired(creds, endpoint=f"credential_process {self.argv[0]!r}")


def _reap(proc: subprocess.Popen[bytes], reader_done: threading.Event) -> None:
    """Wait for the reader thread to end, then collect the killed helper (no zombie)."""
    reader_done.wait()
    if proc.returncode is None:
        proc.communicate()  # after TimeoutExpired: drain the pipes and wait, as subprocess.run
