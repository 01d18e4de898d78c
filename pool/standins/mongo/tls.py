"""TLS for the stand-ins: a throwaway CA and server certificate made at start (trustme).

Atlas serves TLS only, with a certificate for each member's host name. A
:class:`TlsMaterial` makes a CA and one server certificate valid for every
name and address the stand-ins listen on or advertise (``localhost``,
``127.0.0.1``, ``::1`` and any member names given), writes the CA as a PEM
file for clients (PyMongo's ``tlsCAFile``) and hands servers their
``ssl.SSLContext``. Nothing is trusted system-wide; the files live in a
temporary directory removed by :meth:`TlsMaterial.close`.

Key material here is the stand-in's own and worthless outside it.
"""

from __future__ import annotations

import ssl
import tempfile
from collections.abc import Iterable
from pathlib import Path

from pool.errors import ConfigurationError

__all__ = ["TlsMaterial"]

_ALWAYS = ("localhost", "127.0.0.1", "::1")


class TlsMaterial:
    """A CA and one server certificate for ``names`` (plus loopback); see the module doc."""

    def __init__(self, names: Iterable[str] = ()) -> None:
        try:
            import trustme
        except ImportError as exc:  # pragma: no cover - the standins extra brings it
            raise ConfigurationError(
                "TLS stand-ins need the 'trustme' package: pip install 'mongodb-aws-pool[standins]'"
            ) from exc
        self.names = list(dict.fromkeys([*_ALWAYS, *names]))
        self._ca = trustme.CA(organization_name="pool stand-in CA")
        self._cert = self._ca.issue_cert(*self.names)
        self._dir: tempfile.TemporaryDirectory[str] | None = tempfile.TemporaryDirectory(
            prefix="pool-standin-tls-"
        )
        self.ca_file = str(Path(self._dir.name) / "ca.pem")
        self._ca.cert_pem.write_to_path(self.ca_file)

    def server_context(self) -> ssl.SSLContext:
        """A server-side context presenting the certificate (TLS 1.2+)."""
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        self._cert.configure_cert(ctx)
        return ctx

    def client_context(self) -> ssl.SSLContext:
        """A client-side context trusting only this CA (for raw-socket tests)."""
        ctx = ssl.create_default_context(cafile=self.ca_file)
        return ctx

    def close(self) -> None:
        """Remove the CA file. Idempotent."""
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def __repr__(self) -> str:
        return f"<TlsMaterial names={self.names!r} ca_file={self.ca_file!r}>"
