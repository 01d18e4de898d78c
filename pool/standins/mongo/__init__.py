"""An Atlas-like MongoDB server stand-in speaking the wire protocol, with MONGODB-AWS.

PyMongo's ``MongoClient``/``AsyncMongoClient`` and Motor connect to
:class:`MongoStandIn` unmodified. Authentication is verified against a
:class:`~pool.standins.authority.CredentialAuthority` as Atlas verifies it
against STS; storage and query semantics come from mongomock.
"""

from __future__ import annotations

from pool.standins.mongo.auth import region_for
from pool.standins.mongo.commands import MongoStats
from pool.standins.mongo.server import MongoStandIn

__all__ = ["MongoStandIn", "MongoStats", "region_for"]
