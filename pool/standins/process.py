"""The stand-ins in a child process: ``python -m pool emulate`` driven from Python.

Benchmarks and the demo measure clients, so the servers must not share the
clients' event loop, nor their GIL: PyMongo's own credential lookup blocks
the loop it runs on, and the MongoDB stand-in's storage is CPU work.
:class:`EmulatorProcess` starts ``python -m pool emulate --json PATH``,
waits for the JSON, and exposes what it says; ``aclose()`` sends SIGINT and
waits for a clean exit (SIGKILL after a timeout).
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

from pool._internal.resource import AsyncResource

__all__ = ["EmulatorProcess"]


class EmulatorProcess(AsyncResource):
    """``python -m pool emulate`` as a child process; async context manager.

    ``faults`` are spec strings (see :mod:`pool.standins.faults`), ``rate_limits``
    too (see :mod:`pool.standins.throttle`); ``replica_set``, ``sharded``,
    ``tls`` and ``srv`` choose the MongoDB topology as
    :class:`~pool.standins.emulator.Emulator` does. :attr:`info` is the JSON
    the child wrote (``mongodb_uri``, ``tls_ca_file``, ``mongodb_members``,
    ``mongodb_srv_uri``, ``dns_server``...). After ``aclose()``,
    :attr:`stats` holds the child's per-second counters (``emulate --stats``).
    """

    def __init__(
        self,
        *,
        lifetime: float = 3600.0,
        command_delay: float = 0.0,
        faults: list[str] | None = None,
        start_timeout: float = 60.0,
        rate_limits: list[str] | None = None,
        replica_set: int = 0,
        sharded: int = 0,
        tls: bool = False,
        srv: bool = False,
    ) -> None:
        self._args = [
            "--lifetime",
            str(lifetime),
            "--command-delay",
            str(command_delay),
        ]
        if replica_set:
            self._args += ["--replica-set", str(replica_set)]
        if sharded:
            self._args += ["--sharded", str(sharded)]
        self._args += ["--tls"] if tls else []
        self._args += ["--srv"] if srv else []
        for spec in faults or []:
            self._args += ["--fault", spec]
        for spec in rate_limits or []:
            self._args += ["--rate-limit", spec]
        self._start_timeout = start_timeout
        self._proc: asyncio.subprocess.Process | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self.info: dict[str, Any] = {}
        self.stats: dict[str, Any] = {}

    async def start(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="pool-emulate-")
        out = Path(self._dir.name) / "emulate.json"
        log = Path(self._dir.name) / "emulate.log"
        # stderr to a file, not a pipe: nobody reads a pipe while the child runs,
        # and a full pipe would stall the child.
        with log.open("wb") as log_file:
            self._proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "pool",
                "emulate",
                "--json",
                str(out),
                "--stats",
                str(Path(self._dir.name) / "stats.json"),
                *self._args,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=log_file,
            )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._start_timeout
        while loop.time() < deadline:
            if self._proc.returncode is not None:
                err = await asyncio.to_thread(_read_if_exists, log)
                raise RuntimeError(f"the emulator exited early: {err[-2000:]}")
            text = await asyncio.to_thread(_read_if_exists, out)
            if text:
                try:
                    self.info = json.loads(text)
                    return
                except json.JSONDecodeError:
                    pass  # still being written
            await asyncio.sleep(0.05)
        await self.aclose()
        raise TimeoutError(f"the emulator did not start within {self._start_timeout} s")

    async def aclose(self) -> None:
        """Stop the child (SIGINT, then SIGKILL after 10 s). Idempotent."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            proc.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if self._dir is not None:
            text = await asyncio.to_thread(_read_if_exists, Path(self._dir.name) / "stats.json")
            if text:
                self.stats = json.loads(text)
            self._dir.cleanup()
            self._dir = None

    @property
    def mongodb_uri(self) -> str:
        return str(self.info["mongodb_uri"])

    def env_for(self, environment: str) -> dict[str, str]:
        """The standard variables for ``environment``, as the emulator printed them."""
        return dict(self.info["environments"][environment])


def _read_if_exists(path: Path) -> str:
    try:
        return path.read_text("utf-8")
    except FileNotFoundError:
        return ""
