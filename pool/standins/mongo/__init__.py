"""An Atlas-like MongoDB server stand-in speaking the wire protocol, with MONGODB-AWS.

PyMongo's ``MongoClient``/``AsyncMongoClient`` and Motor connect to
:class:`MongoStandIn` unmodified. Authentication is verified against a
:class:`~pool.standins.authority.CredentialAuthority` as Atlas verifies it
against STS; storage and query semantics come from mongomock.
:class:`MongoCluster` runs several of them as a replica set or as the
``mongos`` routers of a sharded cluster, optionally over TLS.
"""

from __future__ import annotations

from pool.standins.mongo.auth import region_for
from pool.standins.mongo.cluster import MongoCluster
from pool.standins.mongo.commands import MongoStats
from pool.standins.mongo.server import MongoStandIn

__all__ = ["MongoCluster", "MongoStandIn", "MongoStats", "region_for"]
