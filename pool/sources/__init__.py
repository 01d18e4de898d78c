"""Where AWS credentials come from: one source per environment, and auto-detection.

A source is anything with ``name`` and ``async def fetch() -> Credentials``
(:class:`CredentialSource`). The built-in ones are async context managers whose
``aclose()`` releases their HTTP session.

Importing this package loads neither boto3, botocore nor aiohttp: every HTTP
source (the STS ones included) imports aiohttp on its first request, the
signed STS call imports botocore's signer on its first use (both in a worker
thread, never on the event loop), so the Lambda path
(:class:`EnvironmentSource`) stays cheap.
"""

from __future__ import annotations

from pool.sources.assume_role import AssumeRoleSource
from pool.sources.base import CredentialSource, SourceBase, aclose_source
from pool.sources.container import ContainerSource
from pool.sources.detect import from_environment
from pool.sources.environment import EnvironmentSource
from pool.sources.instance_metadata import InstanceMetadataSource
from pool.sources.profile import ProfileSource
from pool.sources.static import StaticSource
from pool.sources.web_identity import WebIdentitySource

__all__ = [
    "AssumeRoleSource",
    "ContainerSource",
    "CredentialSource",
    "EnvironmentSource",
    "InstanceMetadataSource",
    "ProfileSource",
    "SourceBase",
    "StaticSource",
    "WebIdentitySource",
    "aclose_source",
    "from_environment",
]
