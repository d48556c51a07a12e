"""The one exception tree of iarms-node.

Every error a user or a peer can cause is an `IarmsError` with an HTTP
`status` and a stable `code`; boundaries wrap foreign exceptions
(`raise ConfigError(...) from e`) and one place per front end (the CLI's
`main`, the console's error middleware) turns them into messages.
"""

from __future__ import annotations

import math
from datetime import timedelta


class IarmsError(Exception):
    """Base of every expected error; `str(error)` is the one-line message."""

    status: int = 500
    code: str = "internal"


class ConfigError(IarmsError):
    """The node's configuration or data directory is missing or invalid."""

    status = 500
    code = "config"


class NodeExistsError(ConfigError):
    """`init` was asked to overwrite an existing node."""

    code = "node_exists"


class ReferenceDataError(ConfigError):
    """The shipped firearms reference table is malformed or ambiguous."""

    code = "reference_data"


class SchemaVersionError(ConfigError):
    """The database's schema is not the revision this code reads and writes.

    Behind it (an older node's data, or a newer iarms-node installed):
    `iarms-node migrate` brings it up. Ahead of it (data written by a newer
    iarms-node): this code must not touch it. Nothing was changed either way.
    """

    code = "schema_version"

    def __init__(self, found: str | None, needed: str, migrate: str) -> None:
        self.found, self.needed = found, needed
        self.behind = found is None or (found.isdigit() and int(found) < int(needed))
        if self.behind:
            at = "has no schema" if found is None else f"is at revision {found}"
            message = f"the database {at}, this iarms-node needs {needed}: run `{migrate}`"
        else:
            message = (
                f"the database is at revision {found}, which this iarms-node (at {needed}) "
                "does not know: a newer iarms-node wrote it; run that version"
            )
        super().__init__(message)


class SigningKeyError(IarmsError):
    """The signing key cannot be read, decrypted or written."""

    status = 500
    code = "signing_key"


class StorageFullError(IarmsError):
    """The disk holding the database, or a file being written, is full.

    The store raises it for its driver's own error (SQLite's SQLITE_FULL,
    PostgreSQL's SQLSTATE 53100), after the failed transaction was rolled
    back: what was committed before is intact. `where` names what the disk
    holds (a directory, a PostgreSQL database), `reason` the driver's words.
    """

    status = 507
    code = "storage_full"

    def __init__(
        self, where: str, reason: str, advice: str = "free some space and try again"
    ) -> None:
        super().__init__(f"the disk holding {where} is full ({reason}); {advice}")
        self.where = where
        self.reason = reason

    def advising(self, advice: str) -> StorageFullError:
        """The same error with `advice` (what was kept, what to do) instead of the generic one."""
        return StorageFullError(self.where, self.reason, advice)


class ValidationError(IarmsError):
    """Input from a user (form, CLI argument, CSV row) is invalid."""

    status = 400
    code = "invalid"

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class CsvFormatError(ValidationError):
    """A CSV file cannot be read at all (encoding, header, emptiness)."""

    code = "csv_format"


class NotFoundError(IarmsError):
    """The named record, user or page does not exist."""

    status = 404
    code = "not_found"


class ConflictError(IarmsError):
    """An optimistic version check failed or a unique name is taken."""

    status = 409
    code = "conflict"


class AuthError(IarmsError):
    """Login failed or the session is missing or expired."""

    status = 401
    code = "unauthenticated"


class LoginThrottledError(AuthError):
    """Too many failed sign-ins from the caller's address; the password was not checked."""

    status = 429
    code = "throttled"

    def __init__(self, retry_after: timedelta) -> None:
        minutes = max(1, math.ceil(retry_after.total_seconds() / 60))
        unit = "minute" if minutes == 1 else "minutes"
        super().__init__(
            f"too many failed sign-ins from this address; try again in {minutes} {unit}"
        )
        self.retry_after = retry_after


class PermissionDeniedError(IarmsError):
    """The user's role does not allow the action."""

    status = 403
    code = "forbidden"


class CsrfError(PermissionDeniedError):
    """A form was posted without the session's CSRF token."""

    code = "csrf"


class CrossOriginError(CsrfError):
    """A form was posted to the console from another origin (another site, or another port)."""

    code = "cross_origin"


class PasswordChangeRequiredError(PermissionDeniedError):
    """The user signed in with a password someone else gave them and must change it first."""

    code = "password_change_required"


class AuditChainError(IarmsError):
    """The audit log's hash chain is broken at a given entry."""

    code = "audit_chain"

    def __init__(self, message: str, seq: int) -> None:
        super().__init__(message)
        self.seq = seq


class OprfError(ValidationError):
    """An OPRF input, key or proof is invalid (a blinded element, an evaluation proof)."""

    code = "oprf"


class IndexWorkerError(IarmsError):
    """A worker process evaluating this node's OPRF outputs for its index failed."""

    code = "index_worker"


class PeerUnreachableError(IarmsError):
    """A peer did not answer (connection refused, timeout, oversized answer)."""

    status = 502
    code = "unreachable"


class ImportWorkerError(IarmsError):
    """The worker process parsing a large CSV import failed."""

    code = "import_worker"


class TooManySerialsError(ValidationError):
    """A bulk lookup file with more serials than one lookup checks; `count` is how many."""

    def __init__(self, message: str, count: int) -> None:
        super().__init__(message, "file")
        self.count = count


class UploadTooLargeError(ValidationError):
    """An uploaded file is larger than the console accepts."""

    status = 413
    code = "too_large"

    def __init__(self, message: str) -> None:
        super().__init__(message, "file")


class LookupUnavailableError(IarmsError):
    """The console has no federation services (it was started without the signing key)."""

    status = 503
    code = "no_signing_key"


class IndexFormatError(IarmsError):
    """A membership index or Golomb-coded set is malformed, absurd or not canonical."""

    status = 502
    code = "index_format"


class IndexDeltaError(IndexFormatError):
    """A well-formed index document does not apply to the index at hand (base, version,
    country)."""


class PeerRefusedError(IarmsError):
    """A peer answered with a signed error (its code is kept in `peer_code`)."""

    status = 502
    code = "peer_refused"

    def __init__(self, country: str, peer_code: str, message: str) -> None:
        super().__init__(f"{country} refused: {message} ({peer_code})")
        self.peer_code = peer_code


class ProtocolError(IarmsError):
    """A peer message was refused; answered with a signed error envelope carrying `code`.

    The codes are part of the wire protocol (docs/PROTOCOL.md): never rename one.
    """

    status = 400
    code = "protocol"


class EnvelopeTooLargeError(ProtocolError):
    """The envelope is larger than this node accepts."""

    status = 413
    code = "too_large"


class MalformedEnvelopeError(ProtocolError):
    """The envelope or a message body is not the expected msgpack structure."""

    status = 400
    code = "malformed"


class UnknownSenderError(ProtocolError):
    """The sender is not a peer of this node, or its key id is not one this node accepts."""

    status = 403
    code = "unknown_sender"


class BadSignatureError(ProtocolError):
    """The signature does not verify under the sender's key."""

    status = 401
    code = "bad_signature"


class SenderRevokedError(ProtocolError):
    """The sender was a peer, but this node's admin revoked its trust."""

    status = 403
    code = "revoked"


class WrongRecipientError(ProtocolError):
    """The envelope is addressed to another country."""

    status = 421
    code = "wrong_recipient"


class StaleMessageError(ProtocolError):
    """The timestamp is outside the freshness window: the clocks disagree (or a replay)."""

    status = 400
    code = "clock_skew"

    def __init__(self, message: str, skew_ms: int = 0, window_s: int = 0) -> None:
        super().__init__(message)
        self.skew_ms = skew_ms
        self.window_s = window_s

    @classmethod
    def for_skew(cls, skew_ms: int, window_s: int) -> StaleMessageError:
        """The error for a message `skew_ms` ahead of (positive) or behind this node's clock."""
        seconds = abs(skew_ms)
        amount = f"{seconds // 1000}" if seconds % 1000 == 0 else f"{seconds / 1000:.3f}"
        direction = "ahead of" if skew_ms > 0 else "behind"
        return cls(
            f"message timestamp is {amount} s {direction} this node's clock; "
            f"the window is ±{window_s} s: check the clocks (NTP)",
            skew_ms,
            window_s,
        )


class ReplayError(ProtocolError):
    """This message id was already accepted from this sender."""

    status = 409
    code = "replay"


class UnknownMessageTypeError(ProtocolError):
    """This node does not handle the envelope's message type."""

    status = 400
    code = "unknown_type"


class PolicyRefusedError(ProtocolError):
    """This node's policy for the sender does not allow what it asks."""

    status = 403
    code = "refused"


class RateLimitedError(ProtocolError):
    """The sender asks faster than this node's rate limit for it allows."""

    status = 429
    code = "rate_limited"


class LookupIdUsedError(ProtocolError):
    """A `lookup.confirm` names a lookup id this node has already confirmed for the sender."""

    status = 409
    code = "already_confirmed"


class TraceItemsFullError(ProtocolError):
    """A `trace.report` would keep more items of a trace than a hop position may have (a
    second final receipt, too many answers): refused, so no hop grows our storage."""

    status = 409
    code = "trace_full"


class PeerAnswerError(IarmsError):
    """A peer's signed answer verifies but does not have the shape its type requires."""

    status = 502
    code = "invalid_answer"


class EvidenceError(ValidationError):
    """A hit's evidence bundle does not verify (or is not one)."""

    code = "invalid_evidence"


class TraceFileError(ValidationError):
    """A trace's exported chain file cannot be read (not one, malformed, too large); a file
    that reads but whose chain does not verify is reported problem by problem instead."""

    code = "invalid_trace_file"


class IncompleteTraceError(ValidationError):
    """A trace request lacks what would make it likely to succeed, and was not forced."""

    code = "incomplete_trace"


class ReceiptError(ValidationError):
    """A delivered message's receipt (the peer's signed answer) is missing or does not verify."""

    code = "invalid_receipt"


class ShareError(ValidationError):
    """A statistics share is malformed: not the query's size, or a value out of range."""

    code = "invalid_share"


class SealedShareError(ShareError):
    """A sealed share does not open with this node's HPKE key and the round's binding: sealed
    for another round, query, contributor or aggregator, to another key, or altered."""

    code = "unsealable_share"
