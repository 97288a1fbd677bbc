"""models/export: the shop list and a shop's sub-accounts, built through the domain functions."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from bot import db
from models.accounts import confirm_sub_account, set_im, set_suspended
from models.codes import issue_code, verify_code
from models.export import FIELDS, export_shop, iso_utc, shop_summaries, to_csv, to_json
from models.policy import Policy
from models.roles import create_role
from models.shops import create_shop
from models.tables import User
from models.users import link_phone, touch_user

T0 = datetime(2025, 1, 31, 9, 30, 0)
POLICY = Policy()


@dataclass
class Shops:
    """What ``populate`` created: ids and the accounts an export must show."""

    tea_id: int
    noodle_id: int
    accounts: list[dict[str, Any]]


async def _user(session: AsyncSession, user_id: int, name: str, phone: str) -> User:
    user, _, _ = await touch_user(session, user_id, first_name=name, username=None,
                                  language_code="en", default_locale="en", now=T0)
    return await link_phone(session, user, phone)


async def _bind(session: AsyncSession, shop: Any, owner: User, holder: User, role_id: int,
                nickname: str, im: bool, now: datetime) -> int:
    assert holder.phone is not None
    issued = await issue_code(session, POLICY, shop_id=shop.id, owner_id=owner.id,
                              role_id=role_id, phone=holder.phone, now=now)
    result = await verify_code(session, POLICY, code_id=issued.code.id or 0, owner_id=owner.id,
                               entered=issued.plain, now=now)
    assert result.outcome == "ok"
    account = await confirm_sub_account(session, shop=shop, owner_id=owner.id,
                                        code_id=issued.code.id or 0, role_id=role_id,
                                        nickname=nickname, im_enabled=im, now=now)
    return account.id or 0


async def populate(session: AsyncSession) -> Shops:
    """Two shops: Tea House with three sub-accounts, Noodle Bar with none."""
    owner = await _user(session, 1001, "Olivia", "+8613800138000")
    other = await _user(session, 3003, "Oscar", "+8613700137000")
    wang = await _user(session, 2002, "Wang", "+8613900139000")
    li = await _user(session, 2003, "Li", "+447700900123")
    sam = await _user(session, 2004, "Sam", "+8613600136000")
    tea = await create_shop(session, owner, "Tea House", max_sub_accounts=50, now=T0)
    noodle = await create_shop(session, other, "Noodle Bar", max_sub_accounts=50, now=T0)
    service = await create_role(session, POLICY, shop_id=tea.id or 0, actor_id=owner.id,
                                name="客服 Service", description="",
                                modules=["customer_service", "orders", "home"], now=T0)
    stock = await create_role(session, POLICY, shop_id=tea.id or 0, actor_id=owner.id,
                              name="Stock", description="", modules=["logistics"], now=T0)
    later = T0 + timedelta(minutes=5)
    wang_id = await _bind(session, tea, owner, wang, service.id or 0, "小王", True, T0)
    li_id = await _bind(session, tea, owner, li, stock.id or 0, 'Li, "Ming"', False, later)
    sam_id = await _bind(session, tea, owner, sam, stock.id or 0, "=Sam", False, later)
    changed = T0 + timedelta(hours=2)
    await set_im(session, shop_id=tea.id or 0, actor_id=owner.id, account_id=li_id,
                 enabled=True, now=changed)
    await set_suspended(session, shop_id=tea.id or 0, actor_id=owner.id, account_id=sam_id,
                        suspended=True, now=changed)
    await session.commit()
    accounts = [
        {"id": wang_id, "phone": "+8613900139000", "nickname": "小王", "role": "客服 Service",
         "modules": ["home", "orders", "customer_service"], "im": True, "status": "authorized",
         "created_at": "2025-01-31T09:30:00Z", "updated_at": "2025-01-31T09:30:00Z"},
        {"id": li_id, "phone": "+447700900123", "nickname": 'Li, "Ming"', "role": "Stock",
         "modules": ["logistics"], "im": True, "status": "authorized",
         "created_at": "2025-01-31T09:35:00Z", "updated_at": "2025-01-31T11:30:00Z"},
        {"id": sam_id, "phone": "+8613600136000", "nickname": "=Sam", "role": "Stock",
         "modules": ["logistics"], "im": False, "status": "suspended",
         "created_at": "2025-01-31T09:35:00Z", "updated_at": "2025-01-31T11:30:00Z"},
    ]
    return Shops(tea.id or 0, noodle.id or 0, accounts)


async def populate_url(url: str) -> Shops:
    """``populate`` on the (migrated) database at ``url``."""
    engine = db.create_engine(url)
    try:
        async with db.sessionmaker(engine)() as session:
            return await populate(session)
    finally:
        await engine.dispose()


async def test_export_lists_every_account_unmasked_oldest_first(engine: AsyncEngine) -> None:
    async with db.sessionmaker(engine)() as session:
        shops = await populate(session)
    async with db.sessionmaker(engine)() as session:
        export = await export_shop(session, shops.tea_id)
        empty = await export_shop(session, shops.noodle_id)
        missing = await export_shop(session, 999_999)
    assert export == {"shop": {"id": shops.tea_id, "name": "Tea House"},
                      "accounts": shops.accounts}
    assert empty == {"shop": {"id": shops.noodle_id, "name": "Noodle Bar"}, "accounts": []}
    assert missing is None


async def test_shop_summaries_count_sub_accounts_per_shop(engine: AsyncEngine) -> None:
    async with db.sessionmaker(engine)() as session:
        shops = await populate(session)
        summaries = await shop_summaries(session)
    assert [(s.id, s.name, s.owner_id, s.owner_phone, s.sub_accounts, s.created_at)
            for s in summaries] == [
        (shops.tea_id, "Tea House", 1001, "+8613800138000", 3, "2025-01-31T09:30:00Z"),
        (shops.noodle_id, "Noodle Bar", 3003, "+8613700137000", 0, "2025-01-31T09:30:00Z"),
    ]


def test_csv_has_a_header_joined_modules_and_true_false() -> None:
    rows = [{"id": 7, "phone": "+8613900139000", "nickname": 'Li, "Ming"', "role": "客服",
             "modules": ["home", "orders"], "im": True, "status": "authorized",
             "created_at": "2025-01-31T09:30:00Z", "updated_at": "2025-01-31T09:31:00Z"}]
    text = to_csv(rows)
    assert text.splitlines()[0] == ",".join(FIELDS)
    assert text.endswith("\r\n")
    parsed = list(csv.DictReader(io.StringIO(text, newline="")))
    assert parsed == [{"id": "7", "phone": "+8613900139000", "nickname": 'Li, "Ming"',
                       "role": "客服", "modules": "home;orders", "im": "true",
                       "status": "authorized", "created_at": "2025-01-31T09:30:00Z",
                       "updated_at": "2025-01-31T09:31:00Z"}]
    assert to_csv([]) == ",".join(FIELDS) + "\r\n"


def test_json_keeps_lists_booleans_and_unicode() -> None:
    export = {"shop": {"id": 1, "name": "茶馆"}, "accounts": [
        {"id": 1, "phone": "+8613900139000", "modules": ["home"], "im": False},
    ]}
    text = to_json(export)
    assert "茶馆" in text and text.endswith("\n")
    assert json.loads(text) == export


def test_iso_utc_from_naive_and_aware() -> None:
    assert iso_utc(datetime(2025, 1, 31, 9, 30, 5, 123456)) == "2025-01-31T09:30:05Z"
    aware = datetime.fromisoformat("2025-01-31T17:30:05+08:00")
    assert iso_utc(aware) == "2025-01-31T09:30:05Z"
