"""The package's public face: what ``pool`` exports is what ``__all__`` says."""

from __future__ import annotations

import subprocess
import sys
from types import ModuleType

import pool


def test_all_matches_exports() -> None:
    """Every name in ``pool.__all__`` exists, and every public attribute is listed."""
    for name in pool.__all__:
        assert hasattr(pool, name), f"pool.__all__ lists {name!r} but pool has no such attribute"
    # Submodules are reachable as attributes but are not part of __all__.
    public = {
        n for n, v in vars(pool).items() if not n.startswith("_") and not isinstance(v, ModuleType)
    }
    assert public <= set(pool.__all__), f"exported but not in __all__: {public - set(pool.__all__)}"


def test_import_does_not_load_aws_sdks() -> None:
    """``import pool`` stays cheap for Lambda cold starts: no boto3/botocore/aiobotocore."""
    code = (
        "import sys, pool; "
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('boto3', 'botocore', 'aiobotocore', 'aioboto3', 'mongomock')]; "
        "print(','.join(sorted(bad)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "", f"import pool loaded: {out}"


def test_cli_starts_without_the_optional_extras() -> None:
    """``python -m pool --help`` and ``check --help`` need none of the bench/stand-in extras."""
    code = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('hdrh', 'rich', 'matplotlib', 'mongomock'):
            raise ImportError(f'blocked: {name}')
        return None
sys.meta_path.insert(0, Block())
from pool.cli import main
for argv in (['--help'], ['check', '--help'], ['demo', '--help']):
    try:
        main(argv)
    except SystemExit as exc:
        assert exc.code == 0, (argv, exc.code)
print('ok')
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-2000:]
