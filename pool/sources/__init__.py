"""Where AWS credentials come from: one source per environment, and auto-detection.

A source is anything with ``name`` and ``async def fetch() -> Credentials``
(:class:`CredentialSource`). The built-in ones are async context managers whose
``aclose()`` releases their HTTP session or STS client.

Importing this package loads neither boto3, botocore, aiobotocore, aioboto3
nor aiohttp: the STS sources import them on first use, the HTTP sources
import aiohttp on their first request (both in a worker thread, never on the
event loop), so the Lambda path (:class:`EnvironmentSource`) stays cheap.
"""

from __future__ import annotations

from pool.sources.assume_role import AssumeRoleSource
from pool.sources.base import CredentialSource, SourceBase, aclose_source
from pool.sources.container import ContainerSource
from pool.sources.detect import from_environment
from pool.sources.environment import EnvironmentSource
from pool.sources.instance_metadata import InstanceMetadataSource
from pool.sources.static import StaticSource
from pool.sources.web_identity import WebIdentitySource

__all__ = [
    "AssumeRoleSource",
    "ContainerSource",
    "CredentialSource",
    "EnvironmentSource",
    "InstanceMetadataSource",
    "SourceBase",
    "StaticSource",
    "WebIdentitySource",
    "aclose_source",
    "from_environment",
]
