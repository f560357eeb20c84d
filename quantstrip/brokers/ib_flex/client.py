"""The Flex Web Service: SendRequest (token + query id) answers a reference code, GetStatement
is then polled until the statement is ready.

IB answers "not yet" with a FlexStatementResponse carrying an error code (1019 'generation in
progress', 1018 rate limit, ...); those, and the network failing on the way (a refused or
dropped connection, a timeout, an HTTP 5xx or 429), are retried with a growing wait (tenacity,
at least 10 s after a rate-limit answer) up to `poll_attempts`; permanent answers (invalid
token, expired, IP restriction, an HTTP 4xx...) raise at once. ib_async's FlexReport takes the
1019 answer for a statement, hence this module. The token never appears in logs or errors.
"""

from __future__ import annotations

import http.client
import logging
import time
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Callable

from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from quantstrip.errors import QuantstripError

log = logging.getLogger(__name__)

RETRYABLE = {1001, 1004, 1005, 1006, 1007, 1008, 1009, 1018, 1019, 1021}
RATE_LIMITED = 1018
USER_AGENT = "Quantstrip/0.1 (Flex Web Service client)"


class FlexError(QuantstripError):
    """The Flex Web Service refused or failed; `code` is IB's error code, or the HTTP status
    (or 0 for a network failure) when the answer never came."""

    def __init__(self, code: int, message: str, *, retryable: bool | None = None) -> None:
        self.code = code
        self.retryable = code in RETRYABLE if retryable is None else retryable
        super().__init__(f"Flex Web Service error {code}: {message}")


def response_error(root: ET.Element) -> FlexError | None:
    if root.tag != "FlexStatementResponse":
        return None
    if (root.findtext("Status") or "").strip() == "Success":
        return None
    code = int(root.findtext("ErrorCode") or 0)
    return FlexError(code, (root.findtext("ErrorMessage") or "unknown error").strip())


def _network_error(exc: Exception, what: str) -> FlexError:
    if isinstance(exc, urllib.error.HTTPError):
        transient = exc.code >= 500 or exc.code == 429
        return FlexError(exc.code, f"{what}: HTTP {exc.code} {exc.reason}", retryable=transient)
    reason = getattr(exc, "reason", exc)
    return FlexError(0, f"{what}: network failure ({reason!r})", retryable=True)


class FlexClient:
    def __init__(
        self,
        token: str,
        query_id: str,
        *,
        base_url: str,
        poll_attempts: int = 10,
        poll_interval_s: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
        timeout_s: float = 60.0,
    ) -> None:
        if not token or not query_id:
            raise FlexError(1020, "a Flex token and query id are required")
        self._token = token
        self.query_id = str(query_id)
        self.base_url = base_url.rstrip("/")
        self.poll_attempts = poll_attempts
        self.poll_interval_s = poll_interval_s
        self.sleep = sleep
        self.timeout_s = timeout_s

    def __repr__(self) -> str:
        return f"FlexClient(query_id={self.query_id!r}, base_url={self.base_url!r})"

    def _get(self, url: str, params: dict[str, str], what: str) -> bytes:
        query = urllib.parse.urlencode(params)
        request = urllib.request.Request(f"{url}?{query}", headers={"User-Agent": USER_AGENT})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return response.read()
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            if isinstance(exc, urllib.error.HTTPError):
                exc.close()  # an error answer holds its connection open until closed
            raise _network_error(exc, what) from None  # the URL holds the token: not chained

    def _wait(self, state: RetryCallState) -> float:
        delay = min(self.poll_interval_s * 2 ** (state.attempt_number - 1), 60.0)
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, FlexError) and error.code == RATE_LIMITED:
            delay = max(delay, 10.0)
        return delay

    def _with_retries(self, call: Callable[[], bytes], what: str) -> bytes:
        def attempt() -> bytes:
            body = call()
            try:
                root = ET.fromstring(body)
            except ET.ParseError as exc:
                raise FlexError(
                    0, f"{what}: the answer is not XML ({exc})", retryable=True
                ) from None
            error = response_error(root)
            if error is not None:
                raise error
            return body

        def before_sleep(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            log.info(
                "%s: %s; retrying (%d/%d)", what, error, state.attempt_number, self.poll_attempts
            )

        retrying = Retrying(
            stop=stop_after_attempt(self.poll_attempts),
            wait=self._wait,
            retry=retry_if_exception(lambda e: isinstance(e, FlexError) and e.retryable),
            sleep=self.sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        return retrying(attempt)

    def download(self) -> bytes:
        """The statement XML (SendRequest, then GetStatement until it is ready)."""
        sent = self._with_retries(
            lambda: self._get(
                f"{self.base_url}/SendRequest",
                {"t": self._token, "q": self.query_id, "v": "3"},
                "SendRequest",
            ),
            "SendRequest",
        )
        root = ET.fromstring(sent)
        reference = (root.findtext("ReferenceCode") or "").strip()
        url = (root.findtext("Url") or f"{self.base_url}/GetStatement").strip()
        if not reference:
            raise FlexError(1017, "SendRequest answered no reference code")
        return self._with_retries(
            lambda: self._get(url, {"t": self._token, "q": reference, "v": "3"}, "GetStatement"),
            "GetStatement",
        )


def client_from_settings(**kw: object) -> FlexClient:
    from quantstrip import settings

    flex = settings.platform().brokers.flex
    token = settings.get_secret("brokers.flex.token")
    if token is None:
        raise FlexError(1015, "no token: run `quantstrip secrets set brokers.flex.token`")
    return FlexClient(
        token.reveal(),
        flex.query_id,
        base_url=flex.base_url,
        poll_attempts=flex.poll_attempts,
        poll_interval_s=flex.poll_interval_s,
        **kw,  # type: ignore[arg-type]
    )
