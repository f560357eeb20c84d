"""Typed models of the platform's settings sections.

Unknown keys in a platform section are errors (a typo must not silently fall back to a
default). Secrets are never fields here: they live encrypted in the vault (`quantstrip.secrets`)
under dotted names such as `smtp.primary.password`.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

from quantstrip.settings_file import DEFAULT_DAY_ZONE, DEFAULT_MARK_MAX_AGE_S

MEMORY_SIZE = re.compile(r"^\s*\d+(\.\d+)?\s*([kmgtp]i?b?|b)?\s*$", re.IGNORECASE)


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r}") from None
    return value


class IbSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(7497, ge=1, le=65535)
    client_id: int = Field(1, ge=0)
    account: str = ""
    master_client_id: int | None = None
    timeout_s: float = Field(10.0, gt=0)
    readonly: bool = False
    # Time zone TWS writes execution times in (its login setting); times are stored in UTC.
    tws_timezone: str = "UTC"
    # Kept so existing settings files load: reconnecting never gives up (1 s doubling to
    # reconnect_max_s, with jitter).
    reconnect_attempts: int = Field(10, ge=0)
    reconnect_max_s: float = Field(300.0, gt=0)
    # Each client its own TWS client id (client name -> id); others use client_id. A client id
    # TWS reports in use (326) moves to the next one.
    client_ids: dict[str, int] = {}
    # Open orders in the database checked against TWS's open and completed orders (0: only on
    # connect and reconnect).
    reconcile_interval_s: float = Field(300.0, ge=0)
    # Mail an alert when the IB connection has been down this long, and when it is back.
    down_alert_minutes: float = Field(5.0, gt=0)


class FlexSettings(Section):
    query_id: str = ""
    base_url: str = "https://ndcdyn.interactivebrokers.com/AccountManagement/FlexWebService"
    poll_attempts: int = Field(10, ge=1)
    poll_interval_s: float = Field(5.0, ge=0)


class IbWebSettings(Section):
    base_url: str = "https://api.ibkr.com/v1/api/"
    account_id: str = ""
    use_oauth: bool = True
    consumer_key: str = ""
    access_token: str = ""
    realm: str = "limited_poa"  # "test_realm" with IB's TESTCONS consumer key


class AlpacaSettings(Section):
    paper: bool = True
    key_id: str = ""
    base_url: str | None = None  # REST trading API (default: Alpaca's paper or live endpoint)
    stream_url: str | None = None  # trade-update websocket (default: Alpaca's)
    data_url: str | None = None  # market-data API for bars (default: Alpaca's)


class BrokersSettings(Section):
    default: Literal["sim", "ib", "ib_web", "alpaca"] = "sim"
    ib: IbSettings = IbSettings()
    flex: FlexSettings = FlexSettings()
    ib_web: IbWebSettings = IbWebSettings()
    alpaca: AlpacaSettings = AlpacaSettings()


class SmtpAccount(Section):
    host: str
    port: int = Field(587, ge=1, le=65535)
    security: Literal["ssl", "starttls", "plain"] = "starttls"
    username: str = ""
    from_addr: str
    timeout_s: float = Field(15.0, gt=0)


class EmailSettings(Section):
    default_account: str = "primary"
    recipients: dict[str, list[str]] = Field(default_factory=dict)
    digest_interval_minutes: float = Field(60.0, ge=0)
    retry_attempts: int = Field(3, ge=1, le=10)
    retry_backoff_s: float = Field(2.0, ge=0)
    subject_prefix: str = "[Quantstrip]"
    # The same alert (client and headline) again within this many minutes goes into the next
    # digest instead of a mail of its own: a job failing every minute must not flood the desk.
    alert_repeat_minutes: float = Field(15.0, ge=0)
    # Extra CA bundle to trust for SMTP over TLS (a private relay with its own certificate).
    cafile: str | None = None


class DashboardSettings(Section):
    host: Literal["127.0.0.1", "localhost", "::1"] = "127.0.0.1"
    port: int = Field(8888, ge=1, le=65535)
    # The operator's zone for times shown on the pages (None: the machine's own zone).
    timezone: str | None = None

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str | None) -> str | None:
        return None if value is None else _zone(value)


class DaemonSettings(Section):
    heartbeat_timeout_s: float = Field(60.0, gt=0)
    stop_grace_s: float = Field(10.0, gt=0)
    max_restarts: int = Field(5, ge=0)


class RiskLimits(Section):
    """Pre-trade limits; None means no limit. Checked by `quantstrip.brokers.risk` before an
    order reaches any broker. `[risk.limits]` applies to every client, `[risk.clients.NAME]` to
    one client; where both set a limit, the stricter one holds."""

    # Largest absolute position (quantity) a strategy may hold in one instrument, counting its
    # working orders on the same side.
    max_position: Decimal | None = Field(None, gt=0)
    # Per symbol, overriding max_position for that symbol.
    max_position_by_symbol: dict[str, Decimal] = Field(default_factory=dict)
    # Largest order value: qty x price x multiplier (market orders are valued at a fresh mark).
    max_order_notional: Decimal | None = Field(None, gt=0)
    # Entries are refused once the day's loss (realised + change in unrealised since the start
    # of the day, in the account's zone) reaches this amount.
    max_daily_loss_strategy: Decimal | None = Field(None, gt=0)
    max_daily_loss_account: Decimal | None = Field(None, gt=0)
    max_orders_per_minute: int | None = Field(None, gt=0)

    @field_validator("max_position_by_symbol")
    @classmethod
    def _positive(cls, value: dict[str, Decimal]) -> dict[str, Decimal]:
        for symbol, qty in value.items():
            if qty <= 0:
                raise ValueError(f"{symbol}: must be greater than zero")
        return value


class MarkSettings(Section):
    # A mark older than this is stale: flagged on every page and never used to value an order.
    max_age_s: float = Field(DEFAULT_MARK_MAX_AGE_S, gt=0)
    # Running clients snapshot the prices of what they hold this often (0: only on demand).
    interval_s: float = Field(60.0, ge=0)


class RiskSettings(Section):
    limits: RiskLimits = RiskLimits()
    clients: dict[str, RiskLimits] = Field(default_factory=dict)
    marks: MarkSettings = MarkSettings()
    # Where a trading day starts and ends (daily loss, daily marks): the account's zone.
    day_zone: str = DEFAULT_DAY_ZONE
    account_zones: dict[str, str] = Field(default_factory=dict)

    @field_validator("day_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return _zone(value)

    @field_validator("account_zones")
    @classmethod
    def _known_zones(cls, value: dict[str, str]) -> dict[str, str]:
        for zone in value.values():
            _zone(zone)
        return value

    def zone_for(self, account: str | None) -> str:
        return self.account_zones.get(account or "", self.day_zone)


class LedgerSettings(Section):
    # Whether a write naming a strategy nobody created creates it. "simulation": only in
    # simulation databases; the production record (paper and live clients) refuses unknown names,
    # so a typo never becomes a new strategy; create strategies with ensure_strategy.
    # "always" / "never": in every database / in none.
    create_strategies: Literal["simulation", "always", "never"] = "simulation"


class ResearchSettings(Section):
    """Parameter sweeps (`quantstrip sweep`, quantstrip.research)."""

    # A running Dask scheduler, e.g. "tcp://10.0.0.5:8786"; empty: an in-process LocalCluster.
    cluster: str = ""
    # Runs at once on the local cluster; 0: one per core.
    workers: int = Field(0, ge=0, le=512)
    # Memory a run's kernel may use, e.g. "4GB"; empty: no limit. A run above it is stopped
    # and recorded as failed.
    memory_limit: str = ""

    @field_validator("memory_limit")
    @classmethod
    def _size(cls, value: str) -> str:
        if value.strip() and not MEMORY_SIZE.match(value):
            raise ValueError(f"expected a size such as 4GB or 512MiB, got {value!r}")
        return value.strip()


class PlatformSettings(Section):
    brokers: BrokersSettings = BrokersSettings()
    smtp: dict[str, SmtpAccount] = Field(default_factory=dict)
    email: EmailSettings = EmailSettings()
    dashboard: DashboardSettings = DashboardSettings()
    daemon: DaemonSettings = DaemonSettings()
    risk: RiskSettings = RiskSettings()
    ledger: LedgerSettings = LedgerSettings()
    research: ResearchSettings = ResearchSettings()


PLATFORM_SECTIONS = frozenset(PlatformSettings.model_fields)

# Types a strategy section may declare in its `_types` table.
DECLARABLE_TYPES: dict[str, type | tuple[type, ...]] = {
    "int": int,
    "float": (int, float),
    "str": str,
    "bool": bool,
    "list": list,
    "dict": dict,
}
