"""The command line's face: --version, and the invoked name in --help."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pool

ROOT = Path(__file__).resolve().parents[1]


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)


def test_version() -> None:
    """--version prints the package version with the driver versions, exit status 0."""
    done = run(sys.executable, "-m", "pool", "--version")
    assert done.returncode == 0
    assert done.stdout.startswith(f"mongodb-aws-pool {pool.__version__} (PyMongo ")
    assert "Motor" in done.stdout and "Python 3." in done.stdout


def test_help_names_python_m_pool() -> None:
    """``python -m pool --help`` shows ``python -m pool`` as the program."""
    done = run(sys.executable, "-m", "pool", "--help")
    assert done.returncode == 0 and done.stdout.startswith("usage: python -m pool ")


def test_console_script_help_uses_its_own_name(tmp_path: Path) -> None:
    """The console script (as pip writes it) shows ``mongodb-aws-pool`` in --help."""
    script = tmp_path / "mongodb-aws-pool"
    script.write_text(
        f"#!{sys.executable}\nimport sys\nfrom pool.__main__ import main\nsys.exit(main())\n"
    )
    script.chmod(0o755)
    done = run(str(script), "--help")
    assert done.returncode == 0 and done.stdout.startswith("usage: mongodb-aws-pool ")
    sub = run(str(script), "check", "--help")
    assert sub.stdout.startswith("usage: mongodb-aws-pool check ")
