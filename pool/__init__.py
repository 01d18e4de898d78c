"""MongoDB clients authenticated with AWS IAM whose temporary credentials rotate unnoticed.

Importing this package imports neither boto3, botocore nor aiobotocore: the
Lambda cold-start path (environment variables) must stay cheap.
"""

from pool import sources as sources
from pool._internal.scrub import set_log_scrubbing
from pool.cache import CredentialCache, Fleet, Subscription
from pool.client_pool import (
    ClientPool,
    ConnectionCounts,
    CredentialStatus,
    GenerationStatus,
    PoolStatus,
    WarmupFailure,
)
from pool.credentials import Credentials
from pool.errors import (
    AuthenticationError,
    ConfigurationError,
    CredentialError,
    CredentialFetchError,
    CredentialsExpiredError,
    CredentialsRefusedError,
    InvariantError,
    LeaseExpiredError,
    NoAwsEnvironmentError,
    NoCredentialsFoundError,
    PoolClosedError,
    PoolError,
    ServerUnreachableError,
    WarmupError,
)
from pool.sources.base import CredentialSource

__version__ = "0.1.0"

__all__ = [
    "AuthenticationError",
    "ClientPool",
    "ConfigurationError",
    "ConnectionCounts",
    "CredentialCache",
    "CredentialError",
    "CredentialFetchError",
    "CredentialSource",
    "CredentialStatus",
    "Credentials",
    "CredentialsExpiredError",
    "CredentialsRefusedError",
    "Fleet",
    "GenerationStatus",
    "InvariantError",
    "LeaseExpiredError",
    "NoAwsEnvironmentError",
    "NoCredentialsFoundError",
    "PoolClosedError",
    "PoolError",
    "PoolStatus",
    "ServerUnreachableError",
    "Subscription",
    "WarmupError",
    "WarmupFailure",
    "__version__",
    "set_log_scrubbing",
]
