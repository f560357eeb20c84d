"""Viewers: people the operator shares the report pages with, each with a token of their own.

Tokens live encrypted in the vault (`viewers.<name>`). Revoking a viewer empties its entry
rather than deleting it, so the default viewer `quantstrip up` creates on a workspace's first
start is not created again. The viewer server checks every request against the vault
(viewer_auth.py): a revoked token, or a browser cookie it issued, stops working at once.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from quantstrip.errors import ValidationError

PREFIX = "viewers."
DEFAULT = "viewer"
NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


@dataclass(frozen=True)
class Viewer:
    name: str
    token: str  # empty once revoked

    @property
    def active(self) -> bool:
        return bool(self.token)


def _check(name: str) -> str:
    if not NAME.match(name):
        raise ValidationError(
            "name", f"{name!r}: a viewer name is 1-32 of a-z, 0-9, '_' and '-', starting alnum"
        )
    return name


def every() -> list[Viewer]:
    """Every viewer ever added, revoked ones included (token empty)."""
    from quantstrip import settings

    found = []
    for key in settings.secret_names():
        if key.startswith(PREFIX):
            secret = settings.get_secret(key)
            found.append(Viewer(key[len(PREFIX) :], secret.reveal() if secret else ""))
    return sorted(found, key=lambda v: v.name)


def active() -> dict[str, str]:
    """Name -> token of the viewers that may sign in."""
    return {v.name: v.token for v in every() if v.active}


def add(name: str) -> str:
    """A new token for `name` (a new viewer, a revoked one back, or a rotation); returns it."""
    from quantstrip import settings

    token = secrets.token_urlsafe(24)
    settings.set_secret(PREFIX + _check(name), token)
    return token


def revoke(name: str) -> bool:
    """Revoke `name`'s token; False when there was no such active viewer."""
    from quantstrip import settings

    if name not in active():
        return False
    settings.set_secret(PREFIX + _check(name), "")
    return True


def ensure_default() -> None:
    """On a workspace's first start, one viewer named `viewer` (never again once revoked)."""
    if not every():
        add(DEFAULT)
