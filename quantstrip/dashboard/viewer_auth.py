"""Sign-in for the viewer server: a viewer's token from the vault, checked on every request.

Jupyter's identity provider compares one token fixed at start-up and then trusts its login
cookie until the cookie secret changes, so a revoked viewer would keep a working session. Here
every request is checked against the vault's current viewers (re-read when the vault file
changes): the URL token or `Authorization: token ...` must be an active viewer's, and the
cookie set after a token sign-in carries the viewer's name and a fingerprint of its token, so
revoking or rotating the token ends the sessions it opened.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
from typing import Any

from jupyter_server.auth.identity import IdentityProvider, User
from tornado import web

from quantstrip.dashboard import viewers
from quantstrip.paths import workspace


class _Current:
    """The active viewers, re-read from the vault when its file changes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._tokens: dict[str, str] = {}

    def tokens(self) -> dict[str, str]:
        vault = workspace().secrets / "vault.json"
        try:
            stat = os.stat(vault)
            stamp = (stat.st_mtime_ns, stat.st_size)
        except FileNotFoundError:
            stamp = (0, 0)
        with self._lock:
            if stamp != self._stamp:
                self._tokens = viewers.active()
                self._stamp = stamp
            return dict(self._tokens)


CURRENT = _Current()


def fingerprint(token: str) -> str:
    return hashlib.sha256(b"quantstrip-viewer:" + token.encode()).hexdigest()[:32]


def viewer_for(token: str) -> str | None:
    """The active viewer whose token this is (compared in constant time), else None."""
    if not token:
        return None
    found = None
    for name, expected in CURRENT.tokens().items():
        if hmac.compare_digest(token.encode(), expected.encode()):
            found = name
    return found


def _user(name: str) -> User:
    return User(username=f"viewer:{name}", name=name, display_name=f"{name} (viewer)")


class ViewerIdentityProvider(IdentityProvider):
    """Active viewers sign in with their own token; nobody else gets in."""

    async def get_user_token(self, handler: web.RequestHandler) -> User | None:
        name = viewer_for(self.get_token(handler) or "")
        return _user(name) if name else None

    def user_to_cookie(self, user: User) -> str:
        token = CURRENT.tokens().get(user.name, "")
        return json.dumps({"viewer": user.name, "fp": fingerprint(token)})

    def user_from_cookie(self, cookie_value: str) -> User | None:
        data: dict[str, Any] = json.loads(cookie_value)
        name = str(data.get("viewer", ""))
        token = CURRENT.tokens().get(name)
        if not token or not hmac.compare_digest(str(data.get("fp", "")), fingerprint(token)):
            return None  # revoked or rotated since this session signed in
        return _user(name)

    def process_login_form(self, handler: web.RequestHandler) -> User | None:
        name = viewer_for(handler.get_argument("password", default=""))
        return _user(name) if name else None

    @property
    def auth_enabled(self) -> bool:
        return True

    @property
    def login_available(self) -> bool:
        return True
