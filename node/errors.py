"""The one exception tree of iarms-node.

Every error a user or a peer can cause is an `IarmsError` with an HTTP
`status` and a stable `code`; boundaries wrap foreign exceptions
(`raise ConfigError(...) from e`) and one place per front end (the CLI's
`main`, the console's error middleware) turns them into messages.
"""

from __future__ import annotations


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


class SigningKeyError(IarmsError):
    """The signing key cannot be read, decrypted or written."""

    status = 500
    code = "signing_key"


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


class PermissionDeniedError(IarmsError):
    """The user's role does not allow the action."""

    status = 403
    code = "forbidden"


class CsrfError(PermissionDeniedError):
    """A form was posted without the session's CSRF token."""

    code = "csrf"


class AuditChainError(IarmsError):
    """The audit log's hash chain is broken at a given entry."""

    code = "audit_chain"

    def __init__(self, message: str, seq: int) -> None:
        super().__init__(message)
        self.seq = seq
