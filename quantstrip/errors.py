"""Typed exceptions, so callers (CLI, dashboard, clients) can tell bad input from broken state."""

from __future__ import annotations


class QuantstripError(Exception):
    """Base class of every error Quantstrip raises on purpose."""


class ValidationError(QuantstripError, ValueError):
    """Input was rejected before anything was written. `field` names the offending input."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


class SchemaVersionError(QuantstripError):
    """The database was written by a newer Quantstrip than this one."""


class NotFoundError(QuantstripError, LookupError):
    """A referenced row does not exist."""


class AppendOnlyError(QuantstripError):
    """Ledger rows are never deleted or edited in place; corrections are recorded instead."""


class ConfigError(QuantstripError):
    """A settings or registry file is invalid; the message names the key and the problem."""


class ConflictError(QuantstripError):
    """A fact arrived again with other content (an exec id, a commission): the stored one stands
    and the new one is refused, for a human to look at. Never raised for an exact repeat."""
