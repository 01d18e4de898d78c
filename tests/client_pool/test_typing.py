"""The pool's public signatures under mypy --strict, as a user's code would meet them."""

from __future__ import annotations

import sys
from pathlib import Path

import anyio
import pytest

_USER_CODE = """
import os
from typing import Any

from pool import ClientPool, CredentialCache, CredentialSource, PoolStatus
from pool.sources import from_environment


def from_env() -> ClientPool[Any]:
    return ClientPool("mongodb://h/", credentials=from_environment(), driver=os.environ["DRIVER"])


def from_source(src: CredentialSource) -> ClientPool[Any]:
    return ClientPool("mongodb://h/", credentials=src, driver="motor")


def from_cache(cache: CredentialCache) -> ClientPool[Any]:
    return ClientPool("mongodb://h/", credentials=cache, warm_connections=2, maxPoolSize=8)


def generation(cp: ClientPool[Any]) -> int | None:
    status: PoolStatus = cp.status()
    return status.generation
"""


@pytest.mark.slow
async def test_driver_from_the_environment_type_checks(tmp_path: Path) -> None:
    """`driver=os.environ["DRIVER"]`, a CredentialSource and a typed status() need no
    `# type: ignore` under mypy --strict."""
    root = Path(__file__).resolve().parents[2]
    (tmp_path / "user_code.py").write_text(_USER_CODE)
    (tmp_path / "mypy.ini").write_text("[mypy]\nstrict = True\nignore_missing_imports = True\n")
    result = await anyio.run_process(
        [sys.executable, "-m", "mypy", "--config-file", str(tmp_path / "mypy.ini"),
         "--cache-dir", str(tmp_path / "cache"), str(tmp_path / "user_code.py")],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout.decode()[-3000:]
