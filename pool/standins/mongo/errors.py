"""Command errors in mongod's reply shape (``ok: 0, errmsg, code, codeName``)."""

from __future__ import annotations

from typing import Any

__all__ = ["CODE_NAMES", "CommandError", "error_reply"]

#: The mongod error codes this stand-in answers with (and a few that fault
#: injection commonly uses, so a driver classifies them as it would in production).
CODE_NAMES: dict[int, str] = {
    1: "InternalError",
    2: "BadValue",
    6: "HostUnreachable",
    7: "HostNotFound",
    9: "FailedToParse",
    13: "Unauthorized",
    14: "TypeMismatch",
    17: "ProtocolError",
    18: "AuthenticationFailed",
    20: "IllegalOperation",
    26: "NamespaceNotFound",
    27: "IndexNotFound",
    40: "ConflictingUpdateOperators",
    43: "CursorNotFound",
    112: "WriteConflict",
    48: "NamespaceExists",
    50: "MaxTimeMSExpired",
    59: "CommandNotFound",
    72: "InvalidOptions",
    73: "InvalidNamespace",
    85: "IndexOptionsConflict",
    89: "NetworkTimeout",
    91: "ShutdownInProgress",
    115: "CommandNotSupported",
    186: "ClientMetadataCannotBeMutated",
    189: "PrimarySteppedDown",
    262: "ExceededTimeLimit",
    334: "MechanismUnavailable",
    352: "UnsupportedOpQueryCommand",
    462: "IngressRequestRateLimitExceeded",
    10107: "NotWritablePrimary",
    225: "TransactionTooOld",
    251: "NoSuchTransaction",
    256: "TransactionCommitted",
    263: "OperationNotSupportedInTransaction",
    11000: "DuplicateKey",
    11600: "InterruptedAtShutdown",
    11602: "InterruptedDueToReplStateChange",
    13435: "NotPrimaryNoSecondaryOk",
    40571: "Location40571",
}


class CommandError(Exception):
    """A command failed; becomes an ``ok: 0`` reply, the connection stays open."""

    def __init__(
        self,
        code: int,
        errmsg: str,
        *,
        labels: tuple[str, ...] = (),
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(errmsg)
        self.code = code
        self.errmsg = errmsg
        self.labels = labels
        #: More reply fields (``topologyVersion`` on a state-change error, as mongod sends).
        self.extra = extra or {}

    def reply(self) -> dict[str, Any]:
        return error_reply(self.code, self.errmsg, labels=self.labels) | self.extra


def error_reply(code: int, errmsg: str, *, labels: tuple[str, ...] = ()) -> dict[str, Any]:
    """mongod's failure document; ``codeName`` from :data:`CODE_NAMES`."""
    doc: dict[str, Any] = {
        "ok": 0.0,
        "errmsg": errmsg,
        "code": code,
        "codeName": CODE_NAMES.get(code, "UnknownError"),
    }
    if labels:
        doc["errorLabels"] = list(labels)
    return doc
