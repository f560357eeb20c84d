"""Module clients: `ClientBase`, its fluent scheduler, the calendar gate and the runner process."""

from __future__ import annotations

from quantstrip.client.base import ClientBase

__all__ = ["ClientBase"]
