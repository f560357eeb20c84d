"""Kernels that never see the dashboard's token.

Voila hands every page's kernel the request that opened it (`QUERY_STRING`, `VOILA_REQUEST_URL`),
and the URL `quantstrip up` prints carries `?token=...`: each page kernel had the operator's token
in its environment, where any code it runs (or prints) can reach it (issue 17). The kernel
manager drops the token from those values before the kernel starts; the server's own environment
never holds it (launch_secret).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager

SECRET_PARAMETERS = frozenset({"token", "_xsrf"})
REQUEST_VARIABLES = ("QUERY_STRING", "VOILA_REQUEST_URL")


def _without_secrets(query: str) -> str:
    kept = [
        (k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k not in SECRET_PARAMETERS
    ]
    return urlencode(kept)


def scrub(env: dict[str, str]) -> dict[str, str]:
    """`env` with the token taken out of the request's query string and URL."""
    clean = dict(env)
    if "QUERY_STRING" in clean:
        clean["QUERY_STRING"] = _without_secrets(clean["QUERY_STRING"])
    if "VOILA_REQUEST_URL" in clean:
        parts = urlsplit(clean["VOILA_REQUEST_URL"])
        clean["VOILA_REQUEST_URL"] = urlunsplit(parts._replace(query=_without_secrets(parts.query)))
    return clean


class TokenFreeKernelManager(AsyncMappingKernelManager):
    """The server's kernel manager, with request variables scrubbed of the token. It also starts
    the warm kernel starter with the server, so the first page's kernel is already warm."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        from quantstrip.dashboard.warm_kernels import STARTER

        STARTER.warm_up()

    async def start_kernel(self, *args: Any, **kwargs: Any) -> str:
        if kwargs.get("env"):
            kwargs["env"] = scrub(kwargs["env"])
        return await super().start_kernel(*args, **kwargs)  # type: ignore[no-any-return]
