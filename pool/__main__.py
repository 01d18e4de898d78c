"""``python -m pool``: see :mod:`pool.cli`."""

from pool.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
