"""Guarded bridges to the logging and e-mail services.

The daemon and client runners must survive any failure of a service they merely report to: an
SMTP outage or a logging misconfiguration must never take a strategy down. Each bridge tries the
platform module (`quantstrip.logger`, `quantstrip.email_manager`) and falls back to the standard
library, logging why.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

_fallback = logging.getLogger("quantstrip.client")


def setup_client_logging(client_name: str) -> None:
    """Route this process's logging to the client's log stream (stderr as a fallback)."""
    try:
        from quantstrip import logger

        logger.setup(client_name)
        return
    except Exception as exc:  # module missing or broken: keep the client running
        _basic_stderr_logging()
        _fallback.warning("quantstrip.logger unavailable (%s); logging to stderr", exc)


def setup_daemon_logging() -> None:
    try:
        from quantstrip import logger

        logger.setup_daemon()
        return
    except Exception as exc:
        _basic_stderr_logging()
        _fallback.warning("quantstrip.logger unavailable (%s); logging to stderr", exc)


def _basic_stderr_logging() -> None:
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
        )
        root.addHandler(handler)
        root.setLevel(logging.INFO)


def get_logger(name: str) -> logging.Logger:
    try:
        from quantstrip import logger

        return logger.get(name)  # type: ignore[no-any-return]
    except Exception:
        return logging.getLogger(f"quantstrip.client.{name}")


def send_error_alert(
    client: str,
    error: Any,
    traceback_text: str | None = None,
    to: list[str] | None = None,
) -> None:
    """Record and e-mail an error alert; never raises (the email manager promises the same,
    this guards against it being absent or broken). `to`: the client.toml's recipients, if
    any (otherwise the email manager uses the settings' recipients for the client)."""
    try:
        from quantstrip import email_manager

        if to:
            email_manager.send_error_alert(client, error, traceback_text=traceback_text, to=to)
        else:
            email_manager.send_error_alert(client, error, traceback_text=traceback_text)
    except Exception as exc:
        _fallback.warning("error alert for %s not sent: %s", client, exc)


def send_due_digests() -> None:
    """Send the digests whose interval has passed (queued messages, repeated alerts); never
    raises. The daemon calls it periodically from its mail thread."""
    try:
        from quantstrip import email_manager

        email_manager.flush()
    except Exception as exc:
        _fallback.warning("digests not sent: %s", exc)
