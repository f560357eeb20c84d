"""Canonical events as plain data and back, exactly (Decimals as text, times with their offset):
the form in which the recorder's journal keeps events the database could not take."""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from quantstrip.brokers.events import (
    AccountValueEvent,
    CashEvent,
    CommissionEvent,
    ErrorEvent,
    ExecutionEvent,
    InstrumentSpec,
    OrderModifiedEvent,
    OrderPlacedEvent,
    OrderRequest,
    OrderStatusEvent,
    PositionEvent,
)

RECORD_TYPES: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        InstrumentSpec,
        OrderRequest,
        OrderPlacedEvent,
        OrderModifiedEvent,
        OrderStatusEvent,
        ExecutionEvent,
        CommissionEvent,
        PositionEvent,
        AccountValueEvent,
        CashEvent,
        ErrorEvent,
    )
}


def register_record_type(cls: type) -> type:
    """Let an event defined elsewhere (marks) travel through `to_record`/`from_record`."""
    RECORD_TYPES[cls.__name__] = cls
    return cls


def to_record(value: Any) -> Any:
    """An event (or a value inside one) as JSON-ready data, exactly: Decimals as text, times as
    ISO-8601 with their offset, nested value types by name."""
    if is_dataclass(value) and not isinstance(value, type):
        name = type(value).__name__
        if RECORD_TYPES.get(name) is not type(value):
            raise TypeError(f"{name} is not a registered record type")
        return {
            "type": name,
            "fields": {f.name: to_record(getattr(value, f.name)) for f in fields(value)},
        }
    if isinstance(value, Decimal):
        return {"decimal": str(value)}
    if isinstance(value, datetime):
        return {"time": value.isoformat()}
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, list | tuple):
        return [to_record(item) for item in value]
    raise TypeError(f"cannot record a {type(value).__name__}: {value!r}")


def from_record(data: Any) -> Any:
    """The inverse of `to_record`."""
    if isinstance(data, dict):
        if "decimal" in data:
            return Decimal(data["decimal"])
        if "time" in data:
            return datetime.fromisoformat(data["time"])
        cls = RECORD_TYPES.get(data.get("type", ""))
        if cls is None:
            raise ValueError(f"unknown record type {data.get('type')!r}")
        return cls(**{name: from_record(value) for name, value in data["fields"].items()})
    if isinstance(data, list):
        return [from_record(item) for item in data]
    return data
