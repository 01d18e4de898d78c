"""``python -m pool demo``: the README's first command, end to end on the stand-ins."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_demo_rotates_without_failures_or_lost_writes(tmp_path: Path) -> None:
    """Three environments (one a laptop's SSO profile), 6 s credentials: rotations, 0 failed."""
    out = tmp_path / "demo.json"
    done = subprocess.run(
        [sys.executable, "-m", "pool", "demo", "--duration", "24", "--lifetime", "6",
         "--only", "ecs", "--only", "assume_role", "--only", "laptop", "--workers", "8",
         "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["exit_status"] == 0
    rows = {row["env"]: row for row in report["environments"]}
    assert set(rows) == {"ecs", "assume_role", "laptop"}
    for row in rows.values():
        assert row["rotations"] >= 1 and row["ops"] > 0 and row["tested"]
        assert (row["failed"], row["missing"]) == (0, 0)
        assert row["verdict"].startswith("passed: rotated")
    assert "all environments rotated under load" in done.stdout
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


def test_demo_too_short_to_rotate_says_so_and_fails(tmp_path: Path) -> None:
    """3 s with 6 s credentials: no rotation, so the verdict is NOT TESTED and exit status 3."""
    out = tmp_path / "demo.json"
    done = subprocess.run(
        [sys.executable, "-m", "pool", "demo", "--duration", "3", "--lifetime", "6",
         "--only", "ecs", "--workers", "2", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 3, done.stdout[-3000:] + done.stderr[-3000:]
    (row,) = json.loads(out.read_text())["environments"]
    assert (row["rotations"], row["tested"], row["ok"]) == (0, False, True)
    assert row["verdict"].startswith("NOT TESTED")
    assert "too short" in done.stdout and "all environments rotated" not in done.stdout
