"""Two ``subaccount-bot run`` processes in webhook mode on one PostgreSQL database (SPEC §10),
behind a round-robin reverse proxy (``tests/support/proxy.py``) to which the local Bot API
delivers its updates (the proxy's URL is the webhook URL): consecutive updates of one user land
on different processes (the proxy's own log), whole provisioning flows and customer chats pass,
50 concurrent Confirms make one account, 200 codes expiring while both run are each told once,
and after ``kill -9`` of one process in the middle of flows the other — reached through the
proxy's failover — finishes every flow and every due duty, nothing lost or doubled.

Skipped without TEST_DATABASE_URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import signal
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bot import db
from bot.config import load_settings
from bot.localapi import LocalBotApiServer
from models.clock import SystemClock
from models.codes import issue_code
from models.roles import create_role
from models.service.entries import create_entry
from models.shops import create_shop
from models.tables import User
from tests.fake_server import BotProcess, free_port, running_bot, wait_listening
from tests.harness import Person
from tests.support import db as scratch_db
from tests.support.db import PG_URL, requires_pg
from tests.support.people import HOLDER, HOLDER_PHONE, OWNER, OWNER_PHONE
from tests.support.proxy import RoundRobinProxy, WebhookDelivery

pytestmark = requires_pg

SECRET = "shared-secret_for-two-processes"
CODE_SECRET = "c0de-secret-shared-by-both-processes"
TTL = 4
EXPIRED = "expired before it was entered"
FIRST_RESPONSE = 10  # seconds, the smallest a shop may set
NUDGE = "is still waiting for your first answer"
ANN = Person(5001, "Ann", "en")
BOB = Person(5002, "Bob", "en")


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    base = scratch_db.server_url(PG_URL)
    name = scratch_db.scratch_name("subaccount_scaleout")
    await scratch_db.admin(base, f"CREATE DATABASE {name}")
    url = base.set(database=name).render_as_string(hide_password=False)
    await db.migrate(url)
    yield url
    await scratch_db.admin(base, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def config(port: int, url: str, public: str) -> dict[str, Any]:
    return {
        "telegram": {"mode": "webhook", "processes": 2, "rate_limit": False, "webhook": {
            "listen": "127.0.0.1", "port": port, "url": public,
            "path": "hook", "secret_token": SECRET}},
        "database": {"url": url},
        "verification": {"code_secret": CODE_SECRET, "code_ttl_seconds": TTL},
        "scheduler": {"poll_seconds": 1},
        "service": {"first_response_seconds": FIRST_RESPONSE},
        "logging": {"level": "INFO"},
    }


@dataclass
class Cluster:
    server: LocalBotApiServer
    proxy: RoundRobinProxy
    delivery: WebhookDelivery
    bots: list[BotProcess]
    url: str


@contextlib.asynccontextmanager
async def cluster(tmp_path: Path, url: str, *, ttl: int = TTL) -> AsyncIterator[Cluster]:
    """The local Bot API, the proxy in front of two bot processes (its URL their webhook),
    and the delivery of queued updates to it."""
    async with LocalBotApiServer() as server:
        ports = [free_port(), free_port()]
        async with RoundRobinProxy(ports) as proxy:
            settings = [config(port, url, proxy.url) for port in ports]
            for one in settings:
                one["verification"]["code_ttl_seconds"] = ttl
            async with running_bot(tmp_path / "a", server, settings[0]) as first, \
                    running_bot(tmp_path / "b", server, settings[1]) as second:
                for port in ports:
                    await wait_listening(port)
                hooks = server.api.methods("setWebhook")
                assert {c.params["url"] for c in hooks} == {f"{proxy.url}/hook"}
                assert {c.params["secret_token"] for c in hooks} == {SECRET}
                await proxy.probe()
                assert all(b.up for b in proxy.backends)
                async with WebhookDelivery(server) as delivery:
                    yield Cluster(server, proxy, delivery, [first, second], url)


async def step(c: Cluster, who: Person, push: Any, expect: str, within: float = 20) -> Any:
    """``push()`` queues what ``who`` does; wait for the bot's message containing ``expect``."""
    mark = c.server.mark()
    push()
    return await c.server.wait_message(who, expect, since=mark, within=within)


def find_button(c: Cluster, who: Person, *, prefix: str = "",
                label: str = "") -> tuple[int, str] | None:
    """The latest button in ``who``'s chat whose data starts with ``prefix`` and whose text
    contains ``label``: (message id, data)."""
    for message in reversed(c.server.api.chat(who.id)):
        rows = (message.get("reply_markup") or {}).get("inline_keyboard") or []
        for button in (b for row in rows for b in row):
            data = str(button.get("callback_data") or "")
            if data and data.startswith(prefix) and label in str(button.get("text", "")):
                return int(message["message_id"]), data
    return None


async def press(c: Cluster, who: Person, *, prefix: str = "", label: str = "",
                answered: bool = True) -> str:
    """Once ``who`` has such a button, press it (and wait for the bot's answer to the press
    with ``answered``); the button's data."""
    found: tuple[int, str] = await until(c, lambda: find_button(c, who, prefix=prefix,
                                                                label=label))
    mark = c.server.mark()
    c.server.push_press(who, found[1], message_id=found[0])
    if answered:
        await c.server.wait_call("answerCallbackQuery", since=mark, within=20)
    return found[1]


async def until(c: Cluster, predicate: Any, within: float = 20) -> Any:
    return await c.server.wait_for(lambda _calls: predicate(), within=within)


# --- seeding the database (what other flows, or another process, made) -------------------------


async def in_db(url: str, work: Any) -> Any:
    settings = load_settings(environ={"DATABASE_URL": url, "CODE_SECRET": CODE_SECRET})
    engine = db.create_engine(settings.database.url)
    try:
        async with db.sessionmaker(engine)() as session:
            result = await work(session, settings.policy())
            await session.commit()
            return result
    finally:
        await engine.dispose()


async def seed_codes(url: str, first_owner: int, count: int) -> list[int]:
    """``count`` owners, each with a shop, a role and one code for a phone not on Telegram
    (an invite), issued "by another process": no process has planned their expiry."""

    async def work(session: Any, policy: Any) -> list[int]:
        owners = []
        for n in range(count):
            owner_id = first_owner + n
            now = SystemClock().now()
            user = User(id=owner_id, first_name=f"O{n}", phone=f"+86138{owner_id:08d}",
                        created_at=now)
            session.add(user)
            await session.flush()
            shop = await create_shop(session, user, f"Shop {n}", max_sub_accounts=50, now=now)
            role = await create_role(session, policy, shop_id=shop.id or 0, actor_id=owner_id,
                                     name="Ops", description="", modules=("home",), now=now)
            await issue_code(session, replace(policy, code_ttl_seconds=TTL), shop_id=shop.id or 0,
                             owner_id=owner_id, role_id=role.id,
                             phone=f"+86139{owner_id:08d}", now=now)
            owners.append(owner_id)
        return owners

    result: list[int] = await in_db(url, work)
    return result


async def seed_shop(url: str, owner: Person, phone: str, *, agent: bool = False,
                    holders: tuple[tuple[Person, str], ...] = ()) -> str | None:
    """``owner`` (phone linked) with a shop and a role "Ops"; ``holders`` with their phones
    linked; with ``agent`` the owner answers customers and the shop has an entry (its token)."""

    async def work(session: Any, policy: Any) -> str | None:
        now = SystemClock().now()
        user = User(id=owner.id, first_name=owner.first_name, phone=phone, created_at=now)
        session.add(user)
        for who, their_phone in holders:
            session.add(User(id=who.id, first_name=who.first_name, phone=their_phone,
                             created_at=now))
        await session.flush()
        shop = await create_shop(session, user, f"{owner.first_name}'s Tea", max_sub_accounts=50,
                                 now=now)
        await create_role(session, policy, shop_id=shop.id or 0, actor_id=owner.id, name="Ops",
                          description="", modules=("home",), now=now)
        if not agent:
            return None
        await session.exec(text(  # type: ignore[call-overload]
            "INSERT INTO service_agent (shop_id, user_id, kind, active, status, open_chats, "
            "status_changed_at, created_at) VALUES (:shop, :user, 'owner', true, 'offline', 0, "
            ":now, :now)"), params={"shop": shop.id, "user": owner.id, "now": now})
        _entry, token = await create_entry(session, shop_id=shop.id or 0, actor_id=owner.id,
                                           name="Website", group_id=None, now=now)
        return token

    token: str | None = await in_db(url, work)
    return token


def told(server: LocalBotApiServer) -> Counter[int]:
    return Counter(int(c.params["chat_id"]) for c in server.api.methods("sendMessage")
                   if EXPIRED in str(c.params.get("text", "")))


def nudges(server: LocalBotApiServer, agent: Person, customer: Person) -> int:
    return sum(1 for c in server.api.methods("sendMessage")
               if int(c.params["chat_id"]) == agent.id and NUDGE in str(c.params.get("text"))
               and customer.first_name in str(c.params.get("text")))


def copies(server: LocalBotApiServer, source: Person, target: Person) -> list[str]:
    """The texts of the successful copyMessage calls from ``source``'s chat to ``target``'s."""
    return [str(server.api.messages[target.id][c.result["message_id"]].get("text", ""))
            for c in server.api.methods("copyMessage")
            if int(c.params["from_chat_id"]) == source.id
            and int(c.params["chat_id"]) == target.id and isinstance(c.result, dict)]


async def committed(url: str, sql: str, within: float = 10.0) -> None:
    """Wait (bounded) until ``sql`` counts a row: another process's commit."""
    deadline = asyncio.get_running_loop().time() + within
    while not await scalar(url, sql):
        assert asyncio.get_running_loop().time() < deadline, f"never committed: {sql}"
        await asyncio.sleep(0.05)


async def scalar(url: str, sql: str) -> Any:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return (await conn.execute(text(sql))).scalar()
    finally:
        await engine.dispose()


def alternates(backends: list[int]) -> bool:
    return len(backends) >= 2 and all(a != b for a, b in itertools.pairwise(backends))


# --- the tests ----------------------------------------------------------------------------------


async def test_two_processes_share_users_and_duties_and_survive_kill_9(
    tmp_path: Path, pg_url: str
) -> None:
    async with cluster(tmp_path, pg_url) as c:
        server = c.server
        # one owner's consecutive updates, alternately on the two processes
        await step(c, OWNER, lambda: server.push_command(OWNER, "/start"), "Share my phone number")
        await step(c, OWNER, lambda: server.push_contact(OWNER, OWNER_PHONE),
                   "phone number is linked")
        await step(c, OWNER, lambda: server.push_command(OWNER, "/newshop"),
                   "What is your shop called?")
        await step(c, OWNER, lambda: server.push_text(OWNER, "Tea House"), "Tea House")
        assert c.proxy.landed(OWNER.id) == [0, 1, 0, 1]
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
        await c.bots[0].stop(signal.SIGKILL)
        later = await seed_codes(pg_url, 20_000, 20)
        await server.wait_for(lambda _calls: all(told(server)[o] for o in later),
                              within=TTL + 20)
        counts = told(server)
        assert {owner: counts[owner] for owner in later} == dict.fromkeys(later, 1)
        for _ in range(2):  # whichever turn: the proxy fails over to the live process
            await step(c, OWNER, lambda: server.push_command(OWNER, "/help"), "")
        assert c.proxy.landed(OWNER.id)[-2:] == [1, 1]
        assert not c.proxy.backends[0].up
        assert all(s[-1] == 200 for s in c.delivery.statuses.values())
        assert await c.bots[1].stop() == 0
        assert "Traceback" not in c.bots[1].log()


async def walk_to_code(c: Cluster, owner: Person, holder: Person, phone: str) -> None:
    """``owner`` opens /newaccount, picks the role "Ops" and enters ``phone``: ``holder`` is
    sent a code (the code step of tests/support/flows.to_code_step, over HTTP)."""
    await step(c, owner, lambda: c.server.push_command(owner, "/newaccount"), "")
    await press(c, owner, prefix="na:role:")
    await step(c, holder, lambda: c.server.push_text(owner, phone), "Verification code")


def code_of(c: Cluster, holder: Person) -> str:
    for message in reversed(c.server.api.chat(holder.id)):
        found = re.search(r"Verification code: (\d{6})", str(message.get("text", "")))
        if found:
            return found.group(1)
    raise AssertionError(f"no code in {holder.first_name}'s chat")


async def walk_to_confirm(c: Cluster, owner: Person, holder: Person) -> None:
    """From the code step: the code entered, the suggested nickname taken, IM on (as
    tests/support/flows.to_confirm_step)."""
    await step(c, owner, lambda: c.server.push_text(owner, code_of(c, holder)), "")
    await press(c, owner, label="Use “")
    await press(c, owner, prefix="na:im:1")
    await until(c, lambda: find_button(c, owner, prefix="na:ok:"))


async def test_a_provisioning_flow_across_two_processes_and_50_concurrent_confirms(
    tmp_path: Path, pg_url: str
) -> None:
    async with cluster(tmp_path, pg_url, ttl=120) as c:
        await seed_shop(pg_url, OWNER, OWNER_PHONE, holders=((HOLDER, HOLDER_PHONE),))
        await walk_to_code(c, OWNER, HOLDER, HOLDER_PHONE)
        await walk_to_confirm(c, OWNER, HOLDER)
        assert alternates(c.proxy.landed(OWNER.id))
        shown = find_button(c, OWNER, prefix="na:ok:")
        assert shown is not None
        confirm = shown[1]
        mark = c.server.mark()
        bodies = []
        for _ in range(50):
            c.server.push_press(OWNER, confirm)
            bodies.append(c.server.pending.pop())
        statuses = await asyncio.gather(*(c.delivery.post(body) for body in bodies))
        assert statuses == [200] * 50
        ids = {body["update_id"] for body in bodies}
        assert {hop.backend for hop in c.proxy.log if hop.update_id in ids} == {0, 1}
        await c.server.wait_message(HOLDER, "", since=mark, within=20)
        assert await scalar(pg_url, "SELECT count(*) FROM sub_account") == 1
        assert await scalar(pg_url, "SELECT count(*) FROM audit_event "
                                    "WHERE action = 'account.created'") == 1


async def open_chat(c: Cluster, customer: Person, token: str, agent: Person) -> None:
    await step(c, customer, lambda: c.server.push_command(customer, f"/start {token}"),
               "Tea")
    await until(c, lambda: any(customer.first_name in str(m.get("text", ""))
                               for m in c.server.api.chat(agent.id)))


async def chat_round(c: Cluster, customer: Person, agent: Person, n: int, *,
                     follow_up: bool = False) -> None:
    """The customer writes, the agent answers by replying to the copy (each copied once,
    waited for); with ``follow_up`` the agent adds a plain message (their one open chat gets
    it) and the customer writes again: four updates, so that on a round-robin balancer each
    person's consecutive updates land on different processes (A O O A | A O O A …)."""
    say, answer = f"question {n} from {customer.first_name}", f"answer {n} to {customer.first_name}"
    c.server.push_text(customer, say)
    await until(c, lambda: say in copies(c.server, customer, agent))
    copy_id = next(m["message_id"] for m in reversed(c.server.api.chat(agent.id))
                   if m.get("text") == say)
    original = {k: v for k, v in c.server.api.messages[agent.id][copy_id].items()
                if not k.startswith("_")}
    # the agent reads the copy before answering: by then the process that relayed it has
    # committed the link (an answer racing that commit is asked "which chat?", see
    # docs/deploy.md)
    await committed(c.url, "SELECT count(*) FROM service_message WHERE agent_message_id = "
                    f"{copy_id}")
    c.server.push_update(c.server.message(agent, text=answer, reply_to_message=original))
    await until(c, lambda: answer in copies(c.server, agent, customer))
    if follow_up:
        more, again = f"more {n} for {customer.first_name}", f"thanks {n}"
        c.server.push_text(agent, more)
        await until(c, lambda: more in copies(c.server, agent, customer))
        c.server.push_text(customer, again)
        await until(c, lambda: again in copies(c.server, customer, agent))


async def test_a_customer_chat_across_two_processes(tmp_path: Path, pg_url: str) -> None:
    async with cluster(tmp_path, pg_url) as c:
        token = await seed_shop(pg_url, OWNER, OWNER_PHONE, agent=True)
        assert token is not None
        await step(c, OWNER, lambda: c.server.push_command(OWNER, "/online"), "Online")
        await open_chat(c, ANN, token, OWNER)
        for n in range(3):
            await chat_round(c, ANN, OWNER, n, follow_up=True)
        assert alternates(c.proxy.landed(ANN.id)) and alternates(c.proxy.landed(OWNER.id))
        assert set(c.proxy.landed(ANN.id)) == set(c.proxy.landed(OWNER.id)) == {0, 1}
        # the customer ends the chat and rates it, once
        await press(c, ANN, prefix="cs:end:")
        await until(c, lambda: any("has ended" in str(m.get("text", ""))
                                   for m in c.server.api.chat(ANN.id)))
        await until(c, lambda: any("Ann ended the chat" in str(m.get("text", ""))
                                   for m in c.server.api.chat(OWNER.id)))
        await press(c, ANN, prefix="cs:rate:")
        await until(c, lambda: any("/5" in str(m.get("text", ""))
                                   for m in c.server.api.chat(ANN.id)))
        assert await scalar(pg_url, "SELECT count(*) FROM service_rating") == 1
        assert Counter(await directions(pg_url)) == {"in": 6, "out": 6}
        assert Counter(copies(c.server, ANN, OWNER)) == dict.fromkeys(
            [f"question {n} from Ann" for n in range(3)] + [f"thanks {n}" for n in range(3)], 1)
        assert Counter(copies(c.server, OWNER, ANN)) == dict.fromkeys(
            [f"answer {n} to Ann" for n in range(3)] + [f"more {n} for Ann" for n in range(3)], 1)
        for bot in c.bots:
            assert "Traceback" not in bot.log()


async def directions(url: str) -> list[str]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(text("SELECT direction FROM service_message ORDER BY id"))
            return [str(r[0]) for r in rows]
    finally:
        await engine.dispose()


OWNERS = [(Person(1101 + n, f"Owner{n}", "en"), f"+861380013{n:04d}",
           Person(2101 + n, f"Holder{n}", "en"), f"+861390013{n:04d}") for n in range(3)]


async def test_kill_9_in_the_middle_of_flows(tmp_path: Path, pg_url: str) -> None:
    async with cluster(tmp_path, pg_url, ttl=60) as c:
        for owner, phone, holder, holder_phone in OWNERS:
            await seed_shop(pg_url, owner, phone, holders=((holder, holder_phone),))
        token = await seed_shop(pg_url, OWNER, OWNER_PHONE, agent=True)
        assert token is not None
        await step(c, OWNER, lambda: c.server.push_command(OWNER, "/online"), "Online")
        await open_chat(c, ANN, token, OWNER)
        await chat_round(c, ANN, OWNER, 0)
        # several owners mid-/newaccount: each at the code step, their codes sent
        for owner, _phone, holder, holder_phone in OWNERS:
            await walk_to_code(c, owner, holder, holder_phone)
        # a second customer waits for a first answer (a service-level deadline), and codes
        # issued "elsewhere" expire after the kill
        await open_chat(c, BOB, token, OWNER)
        c.server.push_text(BOB, "is anyone there?")
        await until(c, lambda: copies(c.server, BOB, OWNER))
        expiring = await seed_codes(pg_url, 30_000, 10)

        await c.bots[0].stop(signal.SIGKILL)

        for owner, _phone, holder, _holder_phone in OWNERS:
            await walk_to_confirm(c, owner, holder)
            mark = c.server.mark()
            await press(c, owner, prefix="na:ok:")
            await c.server.wait_message(holder, "", since=mark, within=20)
        for n in range(1, 3):
            await chat_round(c, ANN, OWNER, n)
        await c.server.wait_for(lambda _calls: all(told(c.server)[o] for o in expiring),
                                within=TTL + 20)
        await c.server.wait_for(lambda _calls: nudges(c.server, OWNER, BOB) >= 1,
                                within=FIRST_RESPONSE + 20)
        assert await scalar(pg_url, "SELECT count(*) FROM sub_account") == len(OWNERS)
        # nothing lost or doubled
        counts = told(c.server)
        assert {o: counts[o] for o in expiring} == dict.fromkeys(expiring, 1)
        assert nudges(c.server, OWNER, BOB) == 1
        assert len(copies(c.server, ANN, OWNER)) == 3 and len(copies(c.server, OWNER, ANN)) == 3
        assert len(copies(c.server, BOB, OWNER)) == 1
        assert Counter(await directions(pg_url)) == {"in": 3 + 1, "out": 3}
        assert all(s[-1] == 200 for s in c.delivery.statuses.values())
        assert not c.proxy.backends[0].up
        for owner, *_rest in OWNERS:
            assert c.proxy.landed(owner.id)[-1] == 1
        assert await c.bots[1].stop() == 0
        assert "Traceback" not in c.bots[1].log()
