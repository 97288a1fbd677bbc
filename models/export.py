"""Operator read-outs: the shop list and a shop's sub-accounts for its other systems.

The queries take an ``AsyncSession`` and return plain values; ``to_csv``/``to_json`` are pure.
Exported phones are E.164 and NOT masked: the export is the shop's own data, for its own
systems. Times are ISO 8601 in UTC (``2025-01-31T09:30:00Z``).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.accounts import all_accounts
from models.tables import Shop, SubAccount, User

#: the columns of an exported sub-account, in CSV order
FIELDS = (
    "id", "phone", "nickname", "role", "modules", "im", "status", "created_at", "updated_at",
)


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


def to_csv(accounts: list[dict[str, Any]]) -> str:
    """The accounts as CSV (RFC 4180, CRLF): a header row, modules ``;``-joined, im true/false."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(FIELDS)
    for row in accounts:
        writer.writerow([
            row["id"], row["phone"], row["nickname"], row["role"], ";".join(row["modules"]),
            "true" if row["im"] else "false", row["status"], row["created_at"],
            row["updated_at"],
        ])
    return out.getvalue()
