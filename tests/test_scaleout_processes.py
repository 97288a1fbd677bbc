"""Two ``subaccount-bot run`` processes in webhook mode on one PostgreSQL database (SPEC §10),
with the local Bot API and a round-robin poster in front: consecutive updates of one user land on
different processes, 200 codes expiring while both run are each told to their owner exactly
once, and after ``kill -9`` of one process the other does every due duty.

Skipped without TEST_DATABASE_URL.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import signal
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bot import db
from bot.config import load_settings
from bot.localapi import LocalBotApiServer
from models.clock import SystemClock
from models.codes import issue_code
from models.roles import create_role
from models.shops import create_shop
from models.tables import User
from tests.fake_server import free_port, running_bot, wait_listening
from tests.support import db as scratch_db
from tests.support.db import PG_URL, requires_pg
from tests.support.people import OWNER, OWNER_PHONE

pytestmark = requires_pg

SECRET = "shared-secret_for-two-processes"
CODE_SECRET = "c0de-secret-shared-by-both-processes"
HEADER = "X-Telegram-Bot-Api-Secret-Token"
TTL = 4
EXPIRED = "expired before it was entered"


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    base = scratch_db.server_url(PG_URL)
    name = scratch_db.scratch_name("subaccount_scaleout")
    await scratch_db.admin(base, f"CREATE DATABASE {name}")
    url = base.set(database=name).render_as_string(hide_password=False)
    await db.migrate(url)
    yield url
    await scratch_db.admin(base, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


class RoundRobin:
    """Posts each update to the next process in turn, as a round-robin balancer would."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = ports
        self._next = itertools.cycle(range(len(ports)))
        self._ids = itertools.count(1)
        self.landed: list[int] = []

    async def post(self, body: dict[str, Any], *, only: int | None = None) -> None:
        index = next(self._next) if only is None else only
        payload = {"update_id": next(self._ids), **body}
        async with httpx.AsyncClient(timeout=10) as client:
            answer = await client.post(f"http://127.0.0.1:{self.ports[index]}/hook",
                                       json=payload, headers={HEADER: SECRET})
        assert answer.status_code == 200
        self.landed.append(index)


def config(port: int, url: str) -> dict[str, Any]:
    return {
        "telegram": {"mode": "webhook", "processes": 2, "rate_limit": False, "webhook": {
            "listen": "127.0.0.1", "port": port, "url": f"http://127.0.0.1:{port}",
            "path": "hook", "secret_token": SECRET}},
        "database": {"url": url},
        "verification": {"code_secret": CODE_SECRET, "code_ttl_seconds": TTL},
        "scheduler": {"poll_seconds": 1},
        "logging": {"level": "INFO"},
    }


async def seed_codes(url: str, first_owner: int, count: int) -> list[int]:
    """``count`` owners, each with a shop, a role and one code for a phone not on Telegram
    (an invite), issued "by another process": no process has planned their expiry."""
    settings = load_settings(environ={"DATABASE_URL": url, "CODE_SECRET": CODE_SECRET})
    policy = settings.policy()
    engine = db.create_engine(settings.database.url)
    owners = []
    try:
        async with db.sessionmaker(engine)() as session:
            for n in range(count):
                owner_id = first_owner + n
                now = SystemClock().now()
                user = User(id=owner_id, first_name=f"O{n}", phone=f"+86138{owner_id:08d}",
                            created_at=now)
                session.add(user)
                await session.flush()
                shop = await create_shop(session, user, f"Shop {n}", max_sub_accounts=50,
                                         now=now)
                assert shop.id is not None
                role = await create_role(session, policy, shop_id=shop.id, actor_id=owner_id,
                                         name="Ops", description="", modules=("home",), now=now)
                issued = await issue_code(
                    session, replace(policy, code_ttl_seconds=TTL),
                    shop_id=shop.id, owner_id=owner_id, role_id=role.id,
                    phone=f"+86139{owner_id:08d}", now=now,
                )
                # an invite lives invite_hours; these are to expire within the run
                issued.code.expires_at = now + timedelta(seconds=TTL)
                session.add(issued.code)
                owners.append(owner_id)
            await session.commit()
    finally:
        await engine.dispose()
    return owners


def told(server: LocalBotApiServer) -> Counter[int]:
    return Counter(int(c.params["chat_id"]) for c in server.api.methods("sendMessage")
                   if EXPIRED in str(c.params.get("text", "")))


async def scalar(url: str, sql: str) -> Any:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return (await conn.execute(text(sql))).scalar()
    finally:
        await engine.dispose()


async def test_two_processes_share_users_and_duties_and_survive_kill_9(
    tmp_path: Path, pg_url: str
) -> None:
    async with LocalBotApiServer() as server:
        ports = [free_port(), free_port()]
        async with running_bot(tmp_path / "a", server, config(ports[0], pg_url)) as first, \
                running_bot(tmp_path / "b", server, config(ports[1], pg_url)) as second:
            for port in ports:
                await wait_listening(port)
            hook_calls = server.api.methods("setWebhook")
            assert {c.params["secret_token"] for c in hook_calls} == {SECRET}
            balancer = RoundRobin(ports)

            # one owner's consecutive updates, alternately on the two processes
            mark = server.mark()
            await balancer.post(server.message(OWNER, text="/start", entities=[
                {"type": "bot_command", "offset": 0, "length": 6}]))
            await server.wait_message(OWNER, "Share my phone number", since=mark)
            mark = server.mark()
            await balancer.post(server.message(OWNER, contact={
                "phone_number": OWNER_PHONE, "first_name": OWNER.first_name,
                "user_id": OWNER.id}))
            await server.wait_message(OWNER, "phone number is linked", since=mark)
            mark = server.mark()
            await balancer.post(server.message(OWNER, text="/newshop", entities=[
                {"type": "bot_command", "offset": 0, "length": 8}]))
            await server.wait_message(OWNER, "What is your shop called?", since=mark)
            mark = server.mark()
            await balancer.post(server.message(OWNER, text="Tea House"))
            await server.wait_message(OWNER, "Tea House", since=mark)
            assert balancer.landed == [0, 1, 0, 1]
            assert await scalar(pg_url, "SELECT count(*) FROM shop") == 1

            # 200 codes expiring while both run: each owner told exactly once
            owners = await seed_codes(pg_url, 10_000, 200)
            await server.wait_for(lambda _calls: len(told(server)) >= 200, within=60)
            counts = told(server)
            assert {owner: counts[owner] for owner in owners} == dict.fromkeys(owners, 1)
            assert await scalar(pg_url, "SELECT count(*) FROM verification_code "
                                        "WHERE status = 'expired'") == 200
            assert await scalar(pg_url, "SELECT count(*) FROM audit_event "
                                        "WHERE action = 'code.expired'") == 200

            # kill -9 one process: the other does every due duty and takes every update
            await first.stop(signal.SIGKILL)
            later = await seed_codes(pg_url, 20_000, 20)
            await server.wait_for(lambda _calls: all(told(server)[o] for o in later),
                                  within=TTL + 20)
            counts = told(server)
            assert {owner: counts[owner] for owner in later} == dict.fromkeys(later, 1)
            mark = server.mark()
            await balancer.post(server.message(OWNER, text="/help", entities=[
                {"type": "bot_command", "offset": 0, "length": 5}]), only=1)
            await server.wait_for(
                lambda calls: any(c.method == "sendMessage" and c.params.get("chat_id")
                                  == OWNER.id for c in calls[mark:]), within=10)
            assert await second.stop() == 0
    assert "Traceback" not in second.log()


def press_body(server: LocalBotApiServer, who: Any, data_prefix: str) -> dict[str, Any]:
    """A callback query of ``who`` pressing the latest button whose data starts with
    ``data_prefix`` (not queued: posted to a process by the test)."""
    for message in reversed(server.api.chat(who.id)):
        rows = (message.get("reply_markup") or {}).get("inline_keyboard") or []
        for button in (b for row in rows for b in row):
            if str(button.get("callback_data", "")).startswith(data_prefix):
                public = {k: v for k, v in message.items() if not k.startswith("_")}
                return {"callback_query": {
                    "id": str(next(_query_ids)), "from": who.as_dict(),
                    "chat_instance": str(who.id), "data": button["callback_data"],
                    "message": public}}
    raise AssertionError(f"no button {data_prefix!r} in {who.first_name}'s chat")


_query_ids = itertools.count(1)


async def button_press(server: LocalBotApiServer, who: Any, data_prefix: str) -> dict[str, Any]:
    """Wait until ``who`` has such a button, then the body of pressing it."""

    def shown(_calls: Any) -> dict[str, Any] | None:
        try:
            return press_body(server, who, data_prefix)
        except AssertionError:
            return None

    body: dict[str, Any] = await server.wait_for(shown, within=20)
    return body


def command(server: LocalBotApiServer, who: Any, name: str) -> dict[str, Any]:
    return server.message(who, text=name, entities=[
        {"type": "bot_command", "offset": 0, "length": len(name)}])


async def test_a_provisioning_flow_across_two_processes_and_50_concurrent_confirms(
    tmp_path: Path, pg_url: str
) -> None:
    from tests.support.people import HOLDER, HOLDER_PHONE

    async with LocalBotApiServer() as server:
        ports = [free_port(), free_port()]
        async with running_bot(tmp_path / "a", server, config(ports[0], pg_url)), \
                running_bot(tmp_path / "b", server, config(ports[1], pg_url)):
            for port in ports:
                await wait_listening(port)
            lb = RoundRobin(ports)

            async def step(body: dict[str, Any], who: Any, expect: str) -> None:
                mark = server.mark()
                await lb.post(body)
                await server.wait_message(who, expect, since=mark, within=20)

            contact = {"phone_number": OWNER_PHONE, "first_name": "O", "user_id": OWNER.id}
            await step(command(server, OWNER, "/start"), OWNER, "Share my phone number")
            await step(server.message(OWNER, contact=contact), OWNER, "phone number is linked")
            await step(command(server, OWNER, "/newshop"), OWNER, "What is your shop called?")
            await step(server.message(OWNER, text="Tea House"), OWNER, "Tea House")
            holder_contact = {"phone_number": HOLDER_PHONE, "first_name": "H",
                              "user_id": HOLDER.id}
            await step(command(server, HOLDER, "/start"), HOLDER, "Share my phone number")
            await step(server.message(HOLDER, contact=holder_contact), HOLDER, "linked")
            settings = load_settings(environ={"DATABASE_URL": pg_url, "CODE_SECRET": CODE_SECRET})
            engine = db.create_engine(settings.database.url)
            async with db.sessionmaker(engine)() as session:
                shop_id = await scalar(pg_url, "SELECT id FROM shop")
                await create_role(session, settings.policy(), shop_id=shop_id, actor_id=OWNER.id,
                                  name="Ops", description="", modules=("home",),
                                  now=SystemClock().now())
                await session.commit()
            await engine.dispose()
            await step(command(server, OWNER, "/newaccount"), OWNER, "")
            await step((await button_press(server, OWNER, "na:role:")), OWNER, "")
            mark = server.mark()
            await lb.post(server.message(OWNER, text=HOLDER_PHONE))
            sent = await server.wait_message(HOLDER, "Verification code", since=mark, within=20)
            found = re.search(r"Verification code: (\d{6})", str(sent.result["text"]))
            assert found is not None
            plain = found.group(1)
            await step(server.message(OWNER, text=plain), OWNER, "")
            await step((await button_press(server, OWNER, "na:nick")), OWNER, "")
            await step((await button_press(server, OWNER, "na:im:1")), OWNER, "")
            confirm = (await button_press(server, OWNER, "na:ok:"))
            mark = server.mark()
            await asyncio.gather(*(lb.post(confirm) for _ in range(50)))
            assert set(lb.landed[-50:]) == {0, 1}  # the Confirms went to both processes
            await server.wait_message(HOLDER, "", since=mark, within=20)
            accounts = await scalar(pg_url, "SELECT count(*) FROM sub_account")
            assert accounts == 1
            assert await scalar(pg_url, "SELECT count(*) FROM audit_event "
                                        "WHERE action LIKE 'account.%'") >= 1
