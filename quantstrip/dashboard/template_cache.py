"""Compiled page templates kept between requests.

Voila builds a new nbconvert exporter for every page it renders, and with it a new Jinja
environment, which compiles the page template and everything it extends and imports (lab's
index, base, macros) from source again: about 0.5 s of the server's time before the first byte
of every page, measured with py-spy on the dashboard (the whole "commit" wait of a trivial page).
Jinja can keep compiled templates in a bytecode cache; nbconvert offers no setting for it, so
`install` gives every environment nbconvert creates in this process one shared in-memory cache.

The cache is keyed by template name, file and a checksum of its source (Jinja's own check, so
an edited template is compiled again) and by the environment's async mode (Voila renders
asynchronously, JupyterLab's "export as HTML" does not; the compiled code differs).
"""

from __future__ import annotations

import threading
from io import BytesIO
from typing import Any

from jinja2 import BytecodeCache, Environment
from jinja2.bccache import Bucket
from nbconvert.exporters.templateexporter import TemplateExporter


class MemoryBytecodeCache(BytecodeCache):
    """Jinja's compiled templates, in this process's memory."""

    def __init__(self) -> None:
        self._code: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def get_bucket(
        self, environment: Environment, name: str, filename: str | None, source: str
    ) -> Bucket:
        mode = "async" if environment.is_async else "sync"
        key = f"{self.get_cache_key(name, filename)}-{mode}"
        bucket = Bucket(environment, key, self.get_source_checksum(source))
        self.load_bytecode(bucket)
        return bucket

    def load_bytecode(self, bucket: Bucket) -> None:
        with self._lock:
            code = self._code.get(bucket.key)
        if code is not None:
            bucket.load_bytecode(BytesIO(code))

    def dump_bytecode(self, bucket: Bucket) -> None:
        out = BytesIO()
        bucket.write_bytecode(out)
        with self._lock:
            self._code[bucket.key] = out.getvalue()

    def clear(self) -> None:
        with self._lock:
            self._code.clear()


CACHE = MemoryBytecodeCache()
_original_create_environment = TemplateExporter._create_environment


def _create_environment(self: TemplateExporter) -> Any:
    environment = _original_create_environment(self)
    environment.bytecode_cache = CACHE
    return environment


def install() -> None:
    """Give every Jinja environment nbconvert creates from now on the shared cache (the servers'
    configuration files call this once, at start)."""
    TemplateExporter._create_environment = _create_environment  # type: ignore[method-assign]
