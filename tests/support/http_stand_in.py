"""HTTP stand-ins for broker APIs on 127.0.0.1: a quiet handler base that answers JSON or any
body, and a context manager that serves in a thread and always stops."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, HTTPServer


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that does not log to stderr and answers in one call."""

    def log_message(self, *args: object) -> None:
        pass

    def send_body(self, body: bytes, content_type: str, code: int = 200) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def send_json(self, payload: object, code: int = 200) -> None:
        self.send_body(json.dumps(payload).encode(), "application/json", code)


def loopback_server(handler: type[BaseHTTPRequestHandler]) -> HTTPServer:
    return HTTPServer(("127.0.0.1", 0), handler)


@contextmanager
def serving(server: HTTPServer) -> Iterator[HTTPServer]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
