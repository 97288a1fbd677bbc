"""Flow throughput: complete provisioning flows through the real Application, offline,
against a bare python-telegram-bot echo bot driven the same way.

Both bots get ``Update.de_json`` + ``application.process_update`` per update and answer through
the same fake request layer (``bot.localapi.LocalRequest``); only that pair is timed.
"""

from __future__ import annotations

import itertools
import re
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func
from sqlmodel import select
from telegram import (
    InlineKeyboardMarkup,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    Update,
)
from telegram.ext import (
    Application,
    ApplicationBuilder,
    ContextTypes,
    MessageHandler,
    TypeHandler,
    filters,
)

from benchmarks.common import (
    TOKEN,
    Percentiles,
    QueryCounter,
    median,
    percentile,
    production_settings,
)
from bot import db, sqlite_fast
from bot.app import build_application, freeze_startup_heap
from bot.localapi import LocalBotApi as FakeBotApi
from bot.localapi import LocalRequest as FakeRequest
from models.clock import ManualClock
from models.tables import SubAccount
from tests.harness import Harness, Person

CODE = re.compile(r"Verification code: (\d{6})")
ANY_CODE = re.compile(r"(?<![\d*])(\d{6})(?![\d*])")

#: the updates of one provisioning flow, in order (the label of each timed update)
STEPS = (
    "owner /start", "owner contact", "holder /start", "holder contact",
    "/newshop", "shop name", "/roles", "new role", "preset", "role name", "skip description",
    "done (role saved)", "/newaccount", "choose role", "holder phone", "code", "nickname",
    "IM on", "confirm",
)


class TimedHarness(Harness):
    """The test harness, timing only ``Update.de_json`` + ``process_update`` of each update."""

    def __init__(self, app: Application, api: FakeBotApi,  # type: ignore[type-arg]
                 counter: QueryCounter | None = None) -> None:
        super().__init__(app, api, ManualClock())
        self.counter = counter
        self.label = ""
        self.times: list[float] = []
        self.cpu = 0.0  # process CPU seconds of the timed updates (all threads)
        #: the slowest timed update: (wall seconds, CPU seconds, step)
        self.slowest: tuple[float, float, str] = (0.0, 0.0, "")
        self.by_step: dict[str, list[float]] = defaultdict(list)
        self.queries_by_step: dict[str, list[int]] = defaultdict(list)
        self.recording = True
        #: each timed update with the Bot API calls it made (for the "same calls" replay)
        self.script: list[tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]] = []

    async def feed(self, payload: dict[str, Any]) -> list[Any]:
        payload = {"update_id": next(self._update_ids), **payload}
        before = self.counter.statements if self.counter else 0
        calls = len(self.api.calls)
        cpu, start = time.process_time(), time.perf_counter()
        update = Update.de_json(payload, self.app.bot)
        await self.app.process_update(update)
        elapsed = time.perf_counter() - start
        if self.recording:
            used = time.process_time() - cpu
            self.cpu += used
            self.times.append(elapsed)
            if elapsed > self.slowest[0]:
                self.slowest = (elapsed, used, self.label)
            self.by_step[self.label].append(elapsed)
            if self.counter is not None:
                self.queries_by_step[self.label].append(self.counter.statements - before)
            self.script.append((payload, [(c.method, c.params) for c in self.api.calls[calls:]]))
        return []

    # --- reading the chats (not timed) -------------------------------------------------------
    def button(self, who: Person, prefix: str, suffix: str = "") -> str:
        """Callback data starting with ``prefix`` on the newest message of ``who`` showing one."""
        for message in reversed(self.api.chat(who.id)):
            for row in (message.get("reply_markup") or {}).get("inline_keyboard") or []:
                for b in row:
                    data = b.get("callback_data") or ""
                    if data.startswith(prefix) and data.endswith(suffix):
                        return str(data)
        raise RuntimeError(f"no {prefix}…{suffix} button in {who.first_name}'s chat; last: "
                           f"{self.api.chat(who.id)[-1]['text'][:200] if self.api.chat(who.id) else '—'}")

    def code_in_chat(self, who: Person) -> str:
        for message in reversed(self.api.chat(who.id)):
            found = CODE.search(message["text"]) or ANY_CODE.search(message["text"])
            if found:
                return found.group(1)
        raise RuntimeError(f"no code in {who.first_name}'s chat")

    async def step(self, label: str, coro: Any) -> None:
        self.label = label
        await coro


def people(i: int) -> tuple[Person, str, Person, str]:
    """Flow ``i``'s owner and holder, with distinct valid Chinese mobile numbers."""
    owner = Person(10_000_000 + i, f"Owner{i}", "en", f"owner{i}")
    holder = Person(20_000_000 + i, f"Holder{i}", "en")
    return owner, f"86138{i:08d}", holder, f"86139{i:08d}"


async def provisioning_flow(h: TimedHarness, i: int) -> None:
    """Every update of one provisioning flow, driven as people would."""
    owner, owner_phone, holder, holder_phone = people(i)
    await h.step("owner /start", h.command(owner, "/start"))
    await h.step("owner contact", h.contact(owner, owner_phone))
    await h.step("holder /start", h.command(holder, "/start"))
    await h.step("holder contact", h.contact(holder, holder_phone))
    await h.step("/newshop", h.command(owner, "/newshop"))
    await h.step("shop name", h.text(owner, f"Shop {i}"))
    await h.step("/roles", h.command(owner, "/roles"))
    await h.step("new role", h.press(owner, "r:new"))
    await h.step("preset", h.press(owner, h.button(owner, "rn:p:", ":customer_service")))
    await h.step("role name", h.text(owner, "Customer service"))
    await h.step("skip description", h.press(owner, h.button(owner, "rn:skip:")))
    await h.step("done (role saved)", h.press(owner, h.button(owner, "rn:done:")))
    await h.step("/newaccount", h.command(owner, "/newaccount"))
    await h.step("choose role", h.press(owner, h.button(owner, "na:role:")))
    await h.step("holder phone", h.text(owner, "+" + holder_phone))
    await h.step("code", h.text(owner, h.code_in_chat(holder)))
    await h.step("nickname", h.text(owner, f"Staff {i}"))
    await h.step("IM on", h.press(owner, "na:im:1"))
    await h.step("confirm", h.press(owner, h.button(owner, "na:ok:")))


@dataclass
class FlowResult(Percentiles):
    backend: str
    driver: str
    flows: int
    updates: int
    seconds: float  # sum of the timed updates
    wall: float
    times: list[float]
    statements: int
    commits: int
    cpu: float = 0.0
    slowest: tuple[float, float, str] = (0.0, 0.0, "")
    by_step: dict[str, list[float]] = field(default_factory=dict)
    queries_by_step: dict[str, list[int]] = field(default_factory=dict)
    trace: list[str] = field(default_factory=list)
    script: list[tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]] = field(default_factory=list)
    #: the fake API's next message id when the timed updates began (the replay starts there)
    first_message_id: int = 0

    @property
    def rate(self) -> float:
        return self.updates / self.seconds

    @property
    def cpu_ms(self) -> float:
        """Process CPU per update (less sensitive than wall time to other load on the machine)."""
        return self.cpu / self.updates * 1000

    def samples(self) -> list[float]:
        return self.times


async def _sub_accounts(engine: Any) -> int:
    async with db.sessionmaker(engine)() as session:
        return int((await session.exec(select(func.count()).select_from(SubAccount))).one())


def driver_name(engine: Any) -> str:
    """"fast path", "plain aiosqlite" or the dialect's driver (asyncpg)."""
    if engine.dialect.name != "sqlite":
        return str(engine.dialect.driver)
    return "fast path" if sqlite_fast.installed(engine) else "plain aiosqlite"


async def run_ours(database_url: str, flows: int, *, warmup: int = 3, first: int = 0,
                   trace: bool = False, fast_path: bool = True) -> FlowResult:
    """``flows`` complete flows (after ``warmup`` untimed ones) on a migrated database; on
    SQLite through ``bot.sqlite_fast`` or, with ``fast_path=False``, plain aiosqlite."""
    settings = production_settings(database_url)
    api = FakeBotApi()
    engine = db.create_engine(settings.database.url, fast_path=fast_path)
    app = build_application(settings, engine=engine, request=FakeRequest(api),
                            get_updates_request=FakeRequest(api), rate_limit=False)
    counter = QueryCounter().attach(engine)
    await app.initialize()
    assert app.post_init is not None
    await app.post_init(app)
    freeze_startup_heap()  # as `subaccount-bot run` does before taking updates
    await app.start()
    h = TimedHarness(app, api, counter)
    try:
        before = await _sub_accounts(engine)
        h.recording = False
        for i in range(first, first + warmup):
            await provisioning_flow(h, i)
        h.recording = True
        first_message_id = next(api._ids)
        api._ids = itertools.count(first_message_id)
        statements0, commits0 = counter.statements, counter.commits
        wall = time.perf_counter()
        for i in range(first + warmup, first + warmup + flows):
            if trace and i == first + warmup + flows - 1:
                counter.trace = []
            await provisioning_flow(h, i)
        wall = time.perf_counter() - wall
        statements, commits = counter.statements - statements0, counter.commits - commits0
        steps = counter.trace or []
        counter.trace = None
        made = await _sub_accounts(engine) - before
        if made != warmup + flows:
            raise RuntimeError(f"{made} sub-accounts after {warmup + flows} flows: a flow broke "
                               f"(owner's last message: {api.chat(people(first + warmup + flows - 1)[0].id)[-1]['text'][:300]!r})")
    finally:
        counter.detach()
        await app.stop()
        await app.shutdown()
        if app.post_shutdown is not None:
            await app.post_shutdown(app)
        await engine.dispose()
    return FlowResult(
        backend=engine.dialect.name, driver=driver_name(engine), flows=flows, updates=len(h.times), seconds=sum(h.times),
        wall=wall, times=h.times, statements=statements, commits=commits, cpu=h.cpu,
        slowest=h.slowest,
        by_step=dict(h.by_step), queries_by_step=dict(h.queries_by_step), trace=steps,
        script=h.script, first_message_id=first_message_id,
    )


async def _echo(update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.message is not None and update.message.text is not None
    await update.message.reply_text(update.message.text)


async def run_bare(updates: int, *, warmup: int = 100) -> FlowResult:
    """A bare PTB echo bot (one MessageHandler replying with the text), ``updates`` texts."""
    api = FakeBotApi()
    app = (ApplicationBuilder().token(TOKEN).request(FakeRequest(api))
           .get_updates_request(FakeRequest(api)).build())
    app.add_handler(MessageHandler(filters.TEXT, _echo))
    await app.initialize()
    await app.start()
    h = TimedHarness(app, api)
    h.label = "echo"
    person = Person(30_000_000, "Echo", "en")
    try:
        h.recording = False
        for n in range(warmup):
            await h.text(person, f"hello {n}")
        h.recording = True
        wall = time.perf_counter()
        for n in range(updates):
            await h.text(person, f"hello {n}")
        wall = time.perf_counter() - wall
        if len(api.chat(person.id)) != warmup + updates:
            raise RuntimeError("the echo bot did not answer every update")
    finally:
        await app.stop()
        await app.shutdown()
    return FlowResult(backend="bare PTB", driver="", flows=0, updates=len(h.times), seconds=sum(h.times),
                      wall=wall, times=h.times, statements=0, commits=0, cpu=h.cpu)


def _markup(value: Any) -> Any:
    """The PTB object for a recorded ``reply_markup``."""
    if not value:
        return None
    if "inline_keyboard" in value:
        return InlineKeyboardMarkup.de_json(value, None)
    if "keyboard" in value:
        return ReplyKeyboardMarkup.de_json(value, None)
    return ReplyKeyboardRemove(selective=value.get("selective"))


async def run_replay(ours: FlowResult) -> FlowResult:
    """The floor under ours: bare PTB making exactly ours' Bot API calls, with no logic.

    The same updates are fed; one ``TypeHandler`` sends, edits and answers what ours did for
    that update (same texts, parse mode and keyboards, through PTB's typed methods), with no
    database, no state and no rendering. Its rate is the most ours could reach with this
    conversation's traffic to Telegram.
    """
    calls = {payload["update_id"]: made for payload, made in ours.script}
    api = FakeBotApi()
    api._ids = itertools.count(ours.first_message_id)

    async def replay(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        bot = context.bot
        for method, params in calls[update.update_id]:
            if method == "sendMessage":
                await bot.send_message(
                    params["chat_id"], params["text"], parse_mode=params.get("parse_mode"),
                    reply_markup=_markup(params.get("reply_markup")),
                    disable_web_page_preview=bool(params.get("link_preview_options")),
                )
            elif method == "editMessageText":
                await bot.edit_message_text(
                    params["text"], chat_id=params["chat_id"], message_id=params["message_id"],
                    parse_mode=params.get("parse_mode"),
                    reply_markup=_markup(params.get("reply_markup")),
                    disable_web_page_preview=bool(params.get("link_preview_options")),
                )
            elif method == "answerCallbackQuery":
                await bot.answer_callback_query(
                    params["callback_query_id"], params.get("text"),
                    show_alert=params.get("show_alert"),
                )
            else:
                await bot.do_api_request(method, api_kwargs=params)

    app = (ApplicationBuilder().token(TOKEN).request(FakeRequest(api))
           .get_updates_request(FakeRequest(api)).build())
    app.add_handler(TypeHandler(Update, replay))
    await app.initialize()
    await app.start()
    times: list[float] = []
    cpu_total = 0.0
    try:
        for payload, _made in ours.script:
            cpu, start = time.process_time(), time.perf_counter()
            update = Update.de_json(payload, app.bot)
            await app.process_update(update)
            times.append(time.perf_counter() - start)
            cpu_total += time.process_time() - cpu
        made = sum(len(m) for _p, m in ours.script)
        done = [c for c in api.calls if c.method != "getMe" and c.result is not None]
        if len(done) != made:
            raise RuntimeError(f"the replay made {len(done)} of ours' {made} calls")
    finally:
        await app.stop()
        await app.shutdown()
    return FlowResult(backend="same calls", driver="", flows=ours.flows, updates=len(times),
                      seconds=sum(times), wall=sum(times), times=times, statements=0, commits=0,
                      cpu=cpu_total)


def step_table(result: FlowResult) -> list[str]:
    """Median ms and statements per update, by step of the flow."""
    lines = [f"    {'step':<20} {'p50 ms':>7} {'p99 ms':>7} {'queries':>8}"]
    for label in STEPS:
        times = result.by_step.get(label, [])
        queries = result.queries_by_step.get(label, [])
        lines.append(f"    {label:<20} {median(times) * 1000:>7.2f} {percentile(times, 99) * 1000:>7.2f}"
                     f" {median([float(q) for q in queries]):>8.0f}")
    return lines
