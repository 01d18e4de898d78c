"""Logging set-up for the command line: quiet by default, pretty, on stderr.

The library never configures logging; applications do, and the CLI is one:
it attaches one handler to the ``pool`` logger (not the root logger, and no
global ``structlog.configure()``), rendering the library's structured events
with structlog's ``ProcessorFormatter`` and ``ConsoleRenderer``. Warnings and
errors only, unless ``-v`` (info) or ``-vv`` (debug) is given.
"""

from __future__ import annotations

import logging
import sys

import structlog

_HANDLER_NAME = "pool.cli"


def configure(verbosity: int = 0) -> logging.Handler:
    """Send the ``pool`` loggers' output to stderr at a level chosen by ``verbosity``."""
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    formatter = structlog.stdlib.ProcessorFormatter(
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.stdlib.add_log_level,
            structlog.processors.TimeStamper(fmt="%H:%M:%S"),
            structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()),
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter)
    logger = logging.getLogger("pool")
    for old in [h for h in logger.handlers if h.get_name() == _HANDLER_NAME]:
        logger.removeHandler(old)
    logger.addHandler(handler)
    logger.setLevel(level)
    return handler
