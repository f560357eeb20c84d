"""The Jupyter server's view of the workspace, without the data directory.

The server's root is the workspace (notebooks/, clients/, reports/), and by default the data
directory `var/` lives inside it: the vault, its key, the ledger and the logs were one URL away
(`/files/var/secrets/master.key`, `/view/var/secrets/vault.json`). Every way the server reaches a
file goes through `_get_os_path` (contents API, /view, Voila's renderer, checkpoints, renames)
or through the /files handler, so both refuse paths inside the data directory with 404, and the
file browser does not list it. One exception: `runs/`, the output notebooks of notebook
clients, which the client monitor links for the operator to open in JupyterLab (the viewer
server serves nothing of the data directory).
"""

from __future__ import annotations

import contextvars
import os
from pathlib import Path
from typing import Any

from jupyter_server.base.handlers import AuthenticatedFileHandler
from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager
from tornado import web
from traitlets import Unicode, default

# The directory being listed, so `should_list` (which gets a bare name) can tell where it is.
_listing: contextvars.ContextVar[str | None] = contextvars.ContextVar("listing", default=None)


def data_directory() -> Path:
    """The data directory of the served workspace (QUANTSTRIP_HOME, else <root>/var)."""
    home = os.environ.get("QUANTSTRIP_HOME")
    if home:
        return Path(home).resolve()
    root = os.environ.get("QUANTSTRIP_WORKSPACE") or os.getcwd()
    return (Path(root) / "var").resolve()


SHARED_WITH_OPERATOR = ("runs",)  # folders of the data directory the operator's IDE opens


def is_private(os_path: str | Path, private_dir: str | Path) -> bool:
    """Whether `os_path` is the data directory or inside it, outside SHARED_WITH_OPERATOR
    (symbolic links resolved)."""
    target = Path(os.path.realpath(os_path))
    private = Path(os.path.realpath(private_dir))
    if target != private and private not in target.parents:
        return False
    shared = [private / name for name in SHARED_WITH_OPERATOR]
    return not any(target == s or s in target.parents for s in shared)


class PrivateFileHandler(AuthenticatedFileHandler):
    """/files/... for the workspace, 404 inside the data directory."""

    def validate_absolute_path(self, root: str, absolute_path: str) -> str:
        checked = super().validate_absolute_path(root, absolute_path)
        if is_private(checked, self.contents_manager.private_dir):
            raise web.HTTPError(404)
        return checked


class PrivateContentsManager(AsyncLargeFileManager):
    """The workspace's contents, with the data directory refused (404) and unlisted."""

    private_dir = Unicode(config=True, help="Directory never served (the data directory).")

    @default("private_dir")
    def _private_dir_default(self) -> str:
        return str(data_directory())

    @default("files_handler_class")
    def _files_handler_class_default(self) -> type[AuthenticatedFileHandler]:
        return PrivateFileHandler

    def _get_os_path(self, path: str) -> str:
        os_path = super()._get_os_path(path)
        if is_private(os_path, self.private_dir):
            raise web.HTTPError(404, f"{path} is not served")
        return os_path

    async def _dir_model(self, path: str, content: bool = True) -> dict[str, Any]:
        token = _listing.set(self._get_os_path(path))
        try:
            return await super()._dir_model(path, content)
        finally:
            _listing.reset(token)

    def should_list(self, name: str) -> bool:
        listed = _listing.get()
        if listed is not None and is_private(os.path.join(listed, name), self.private_dir):
            return False
        return super().should_list(name)
