"""An application that configures logging at WARNING and silences ``pool``: run as a script.

One ``get()`` from the container source and one ``ping`` through a pool, as
the issue's reproduction did. ``--debug`` turns the ``pool`` loggers to DEBUG
with a JSON formatter on stderr instead, to see what an application gets.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from typing import Any

from pool import ClientPool, CredentialCache
from pool._internal.log import event_of
from pool.sources import from_environment
from pool.standins.aws import AwsStandIns
from pool.standins.mongo.server import MongoStandIn


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        event = event_of(record)
        body: dict[str, Any] = {"logger": record.name, "level": record.levelname}
        body.update(event if event is not None else {"event": record.getMessage()})
        return json.dumps(body, default=str)


async def main() -> None:
    async with AwsStandIns() as aws, MongoStandIn(aws.authority) as mongo:
        async with from_environment(aws.env_for("ecs")) as source, CredentialCache(source) as cache:
            await cache.get()
            async with ClientPool(mongo.uri, credentials=cache, driver="pymongo") as cp:
                await cp.run(lambda c: c.admin.command("ping"))


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    if sys.argv[1:] == ["--debug"]:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        logging.getLogger("pool").addHandler(handler)
        logging.getLogger("pool").setLevel(logging.DEBUG)
        logging.getLogger("pool").propagate = False
    else:
        logging.getLogger("pool").setLevel(logging.CRITICAL)
    asyncio.run(main())
