"""``python -m pool demo``: the README's first command, end to end on the stand-ins."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_demo_rotates_without_failures_or_lost_writes() -> None:
    """Three environments (one a laptop's SSO profile), 6 s credentials: rotations, 0 failed."""
    done = subprocess.run(
        [sys.executable, "-m", "pool", "demo", "--duration", "24", "--lifetime", "6",
         "--only", "ecs", "--only", "assume_role", "--only", "laptop", "--workers", "8"],
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = {
        name: line
        for line in done.stdout.splitlines()
        for name in ("Amazon ECS", "Role chaining", "Developer laptop")
        if line.startswith(f"│ {name}")
    }
    assert set(rows) == {"Amazon ECS", "Role chaining", "Developer laptop"}
    for line in rows.values():
        cells = [c.strip() for c in line.strip("│").split("│")]
        rotations, operations, failed, missing = cells[5:9]
        assert int(rotations) >= 1 and int(operations.replace(",", "")) > 0
        assert (failed, missing) == ("0", "0")
    assert "0 failed operations, 0 lost writes" in done.stdout
    text = done.stdout + done.stderr
    assert "IQoJb3JpZ2lu" not in text
    assert not re.search(r"(?<![A-Za-z0-9/+])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])", text)


def test_demo_rejects_bad_arguments() -> None:
    """A non-positive duration is refused with exit status 2 and a message, before any work."""
    done = subprocess.run(
        [sys.executable, "-m", "pool", "demo", "--duration", "0"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2 and "must be positive" in done.stderr
