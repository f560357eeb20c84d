"""The canonical trade-lifecycle database: schema, connections, position engine, handler."""

from __future__ import annotations

from quantstrip.db.connection import connect, transaction
from quantstrip.db.migrate import SCHEMA_VERSION, migrate

__all__ = ["SCHEMA_VERSION", "connect", "migrate", "transaction"]
