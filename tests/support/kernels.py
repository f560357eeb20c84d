"""Running code in a real kernel from a test: what it printed and its reply."""

from __future__ import annotations

from typing import Any

from jupyter_client.blocking import BlockingKernelClient


def run_printed(
    client: BlockingKernelClient, code: str, timeout: float = 60
) -> tuple[dict[str, Any], str]:
    """Run `code` through `client` (its channels opened and closed here): (the reply's content,
    the text it printed)."""
    client.start_channels()
    printed: list[str] = []

    def hook(msg: dict[str, Any]) -> None:
        if msg["msg_type"] == "stream":
            printed.append(msg["content"]["text"])

    try:
        client.wait_for_ready(timeout=timeout)
        reply = client.execute_interactive(code, timeout=timeout, output_hook=hook)
    finally:
        client.stop_channels()
    return reply["content"], "".join(printed)
