"""Read-outs: the shop list and a shop's sub-accounts for its other systems (the CLI), and a
shop's activity log (/log's 📤 Export, a CSV document in the owner's chat).

The queries take an ``AsyncSession`` and return plain values; the writers are pure and write
CSV alike (``csv.writer``: RFC 4180, CRLF) — ``write_csv`` all at once, ``LogCsv`` the log a
batch of events at a time (the events are read in batches: ``models.audit.filtered_batches``).
Exported phones of the shop's sub-accounts are
E.164 and NOT masked: the export is the shop's own data, for its own systems; a log row names
the phone as the log recorded it (masked) unless it is the phone of one of the shop's current
sub-accounts, which is then written in full like the accounts export. No code, hash, salt or
token is ever exported (the log never records them). Times are ISO 8601 in UTC
(``2025-01-31T09:30:00Z``).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.accounts import all_accounts
from models.phones import mask_phone
from models.tables import Shop, SubAccount, User

#: the columns of an exported sub-account, in CSV order
FIELDS = (
    "id", "phone", "nickname", "role", "modules", "im", "status", "created_at", "updated_at",
)
#: the columns of an exported log event, in CSV order
LOG_FIELDS = ("id", "time", "who", "action", "object", "phone", "nickname", "role", "what")


@dataclass(frozen=True)
class ShopSummary:
    """One line of the shop list."""

    id: int
    name: str
    owner_id: int
    owner_phone: str | None
    sub_accounts: int
    created_at: str


def iso_utc(moment: datetime) -> str:
    """A naive-UTC (or aware) datetime as ISO 8601 UTC with a ``Z``."""
    aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return aware.strftime("%Y-%m-%dT%H:%M:%SZ")


async def shop_summaries(session: AsyncSession) -> list[ShopSummary]:
    """Every shop with its owner's phone and number of sub-accounts, by id."""
    counts = (
        select(SubAccount.shop_id, func.count().label("n"))
        .group_by(col(SubAccount.shop_id))
        .subquery()
    )
    result = await session.exec(
        select(Shop, User.phone, func.coalesce(counts.c.n, 0))
        .join(User, col(User.id) == Shop.owner_id)
        .outerjoin(counts, counts.c.shop_id == Shop.id)
        .order_by(col(Shop.id))
    )
    return [
        ShopSummary(
            id=shop.id or 0,
            name=shop.name,
            owner_id=shop.owner_id,
            owner_phone=phone,
            sub_accounts=int(n),
            created_at=iso_utc(shop.created_at),
        )
        for shop, phone, n in result.all()
    ]


async def export_shop(session: AsyncSession, shop_id: int) -> dict[str, Any] | None:
    """The shop and every one of its sub-accounts as plain values; ``None`` if no such shop.

    ``{"shop": {"id", "name"}, "accounts": [{"id", "phone", "nickname", "role", "modules",
    "im", "status", "created_at", "updated_at"}, …]}`` with accounts oldest first.
    """
    shop = await session.get(Shop, shop_id)
    if shop is None:
        return None
    accounts = [
        {
            "id": account.id,
            "phone": account.phone,
            "nickname": account.nickname,
            "role": role.name,
            "modules": list(role.modules),
            "im": account.im_enabled,
            "status": account.status,
            "created_at": iso_utc(account.created_at),
            "updated_at": iso_utc(account.updated_at),
        }
        for account, role in await all_accounts(session, shop_id)
    ]
    return {"shop": {"id": shop.id, "name": shop.name}, "accounts": accounts}


def to_json(export: dict[str, Any]) -> str:
    """The export as pretty JSON (UTF-8 text, non-ASCII kept), ending with a newline."""
    return json.dumps(export, ensure_ascii=False, indent=2) + "\n"


def write_csv(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """The one CSV writer (RFC 4180, CRLF): a header row, then the rows."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def to_csv(accounts: list[dict[str, Any]]) -> str:
    """The accounts as CSV (RFC 4180, CRLF): a header row, modules ``;``-joined, im true/false."""
    return write_csv(FIELDS, (
        [
            row["id"], row["phone"], row["nickname"], row["role"], ";".join(row["modules"]),
            "true" if row["im"] else "false", row["status"], row["created_at"],
            row["updated_at"],
        ]
        for row in accounts
    ))


def full_phones(accounts: Iterable[SubAccount]) -> dict[str, str]:
    """The shop's current sub-accounts' phones (E.164) by their masked form, for a log
    export to write them as the accounts export does (a masked form two of them share is
    left masked: it could be either)."""
    found: dict[str, str | None] = {}
    for account in accounts:
        masked = mask_phone(account.phone)
        found[masked] = None if masked in found else account.phone
    return {masked: phone for masked, phone in found.items() if phone is not None}


class LogCsv:
    """A log export written as it is read, a batch of rows at a time (``add``), so that no
    more than a batch of events is held: log events as plain values (newest first, as /log
    tells them: ``id``, ``time`` a datetime, ``who``, ``action``, ``object``, ``phone`` as
    recorded, ``nickname``, ``role``, ``what``); a phone of a current sub-account (``phones``,
    by its masked form) is written in full. ``text()``: the CSV (RFC 4180, CRLF), header first."""

    def __init__(self, phones: dict[str, str]) -> None:
        self._phones = phones
        self._out = io.StringIO()
        self._writer = csv.writer(self._out)
        self._writer.writerow(LOG_FIELDS)
        self.rows = 0

    def add(self, events: Iterable[dict[str, Any]]) -> None:
        for row in events:
            self._writer.writerow([
                row["id"], iso_utc(row["time"]), row["who"], row["action"], row["object"],
                self._phones.get(str(row["phone"] or ""), row["phone"] or ""),
                row["nickname"] or "", row["role"] or "", row["what"],
            ])
            self.rows += 1

    def text(self) -> str:
        return self._out.getvalue()


def log_to_csv(events: Iterable[dict[str, Any]], phones: dict[str, str]) -> str:
    """Log events (plain values, as ``LogCsv`` takes them) as CSV, all at once."""
    writer = LogCsv(phones)
    writer.add(events)
    return writer.text()
