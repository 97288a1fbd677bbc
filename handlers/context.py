"""The per-update context every handler works with: one session, the user, their locale.

``Deps`` is what the composition root builds once (sessions, policy, clock, the router);
``Ctx`` is one update. ``entry`` wraps a handler into a PTB callback: it refuses groups, opens
one ``AsyncSession`` for the update, loads (or creates) the user, runs the handler and commits.
A ``DomainError`` that escapes a handler is rolled back (``Ctx.rollback``) and shown to the
user in their language; any other exception reaches the application's error handler, which
``apologize``s.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession
from telegram import Bot, InlineKeyboardMarkup, Message, Update
from telegram.constants import ChatType, ParseMode
from telegram.error import BadRequest, TelegramError
from telegram.ext import ContextTypes

from handlers.flow import Handler
from handlers.i18n import label, t
from handlers.menus import refresh_menu_of
from handlers.telegram_io import Markup, Undelivered, edit, send, send_safely
from models.accounts import membership_of
from models.clock import Clock
from models.drafts import DraftState, clear_draft, get_draft, save_draft
from models.errors import DomainError
from models.lifecycle.policy import LifecyclePolicy
from models.policy import Policy
from models.service.policy import ServicePolicy
from models.tables import Shop, User
from models.text import drop_controls
from models.users import locale_from_language_code, touch_user
from models.writes import may_have_written

if TYPE_CHECKING:
    from handlers.router import Router

log = logging.getLogger(__name__)


@dataclass
class Deps:
    """What the composition root hands to the handlers (kept in ``bot_data['deps']``)."""

    sessions: async_sessionmaker[AsyncSession]
    policy: Policy
    clock: Clock
    #: the conversations of this application (``handlers.FLOWS``), routed
    router: Router
    default_locale: str = "en"
    #: the time zone of a shop that has chosen none, and of people with no shop (``[shop]``)
    default_time_zone: str = "UTC"
    #: a new shop's customer-service settings (``[service]``)
    service_policy: ServicePolicy = field(default_factory=ServicePolicy)
    #: owner transfer, time-limited access and access reviews (``[lifecycle]``)
    lifecycle: LifecyclePolicy = field(default_factory=LifecyclePolicy)

    def locale_of(self, user: User | None) -> str:
        """A user's language, or the default."""
        return (user.locale if user is not None else None) or self.default_locale


def deps_of(context: ContextTypes.DEFAULT_TYPE) -> Deps:
    """The dependencies the application was built with."""
    deps = context.application.bot_data["deps"]
    assert isinstance(deps, Deps)
    return deps


class Answered(Exception):
    """Raised by a handler that has already told the person what happened and must stop
    there: what it wrote is kept, nothing more is said."""


@dataclass
class Ctx:
    """One update being handled."""

    update: Update
    context: ContextTypes.DEFAULT_TYPE
    session: AsyncSession
    user: User
    deps: Deps
    #: plain copies, still readable after a rollback has expired ``user``
    user_id: int = 0
    locale: str = "en"
    #: the user's draft, loaded with the user when the update began and kept by every write
    draft: DraftState | None = None
    #: the user had no draft row when the update began (nothing written since): saving the
    #: first one needs no update attempt
    _draft_absent: bool = False
    #: the user's shop as loaded with the user (kept, so the session's identity map keeps it);
    #: ``_shop_id`` is None when they had none
    _shop: Shop | None = None
    _shop_id: int | None = None
    #: ``show`` sends new messages instead of editing the pressed one (a screen that must come
    #: below an explanation just sent)
    fresh_screens: bool = False
    #: the person answered "Discard" to the router's question: the flow may be left at once
    discard_confirmed: bool = False
    #: /start: what the person was doing, offered as "▶️ Continue" on the home menu
    resume_hint: str | None = None

    # --- basics -------------------------------------------------------------------------
    @property
    def policy(self) -> Policy:
        return self.deps.policy

    @property
    def router(self) -> Router:
        """The application's conversations: how one flow starts, opens or returns to another."""
        return self.deps.router

    def now(self) -> datetime:
        return self.deps.clock.now()

    def t(self, key: str, /, **params: Any) -> str:
        return t(self.locale, key, **params)

    def label(self, key: str, /, **params: Any) -> str:
        """A button label in the user's language (parameters not HTML-escaped)."""
        return label(self.locale, key, **params)

    def error_text(self, exc: DomainError) -> str:
        """Why a rule refused something, in the user's language."""
        return self.t(f"errors.{exc.key}", **exc.params)

    @property
    def chat_id(self) -> int:
        chat = self.update.effective_chat
        assert chat is not None
        return chat.id

    # --- drafts -------------------------------------------------------------------------
    async def load_draft(self) -> DraftState | None:
        """The user's conversation in progress, if any."""
        return self.draft

    async def _save_draft(self, flow: str, step: str, data: dict[str, Any]) -> None:
        absent = self._draft_absent and self.draft is None
        self._draft_absent = False
        self.draft = await save_draft(
            self.session, self.user_id, flow, step, data, self.now(), known_absent=absent
        )

    async def goto(self, flow: str, step: str, data: dict[str, Any] | None = None) -> None:
        """Move the user to ``flow.step``, keeping (and optionally updating) the draft's data."""
        current = await self.load_draft()
        merged: dict[str, Any] = dict(current.data) if current and current.flow == flow else {}
        if data:
            merged.update(data)
        await self._save_draft(flow, step, merged)

    async def start_flow(self, flow: str, step: str, data: dict[str, Any] | None = None) -> None:
        """Begin ``flow`` afresh (whatever the user was doing before is dropped)."""
        await self._save_draft(flow, step, dict(data or {}))

    async def owned_shop(self) -> Shop:
        """The shop this user is the main account of, or ``no_shop`` (``phone_not_linked``
        before the phone is linked: that comes first)."""
        shop = await self.shop_or_none()
        if shop is None:
            raise DomainError("no_shop" if self.user.phone is not None else "phone_not_linked")
        return shop

    async def owned_shop_or_explain(self, for_owners_key: str) -> Shop | None:
        """For an owner's command: their shop; a staff member is told ``for_owners_key`` (which
        points them to /me) and gets ``None``; anyone else gets ``no_shop``."""
        shop = await self.shop_or_none()
        if shop is not None:
            return shop
        if self.user.phone is None:
            raise DomainError("phone_not_linked")
        if await membership_of(self.session, self.user_id) is not None:
            await self.reply(self.t(for_owners_key))
            return None
        raise DomainError("no_shop")

    async def shop_or_none(self) -> Shop | None:
        """The shop this user is the main account of, or ``None``.

        Loaded with the user when the update began: later calls get it by primary key from the
        session's identity map (no SQL), or read it again if a rollback has expired it since;
        a user who had none then has none now, unless ``adopt_shop`` says this update made one.
        """
        if self._shop_id is None:
            return None
        shop = await self.session.get(Shop, self._shop_id)
        if shop is not None:
            self._shop = shop
        return shop

    def adopt_shop(self, shop: Shop) -> None:
        """The user is now the main account of ``shop`` (made by this update)."""
        self._shop, self._shop_id = shop, shop.id

    async def end_flow(self) -> None:
        await clear_draft(self.session, self.user_id)
        self.draft, self._draft_absent = None, False

    async def rollback(self) -> None:
        """Undo what this update wrote since its last commit, and drop what was cached of it:
        the draft is read again, the user row refreshed (the shop is re-read by its id when
        next asked for)."""
        await self.session.rollback()
        self.draft = await get_draft(self.session, self.user_id)
        self._draft_absent = False
        await self.session.refresh(self.user)

    # --- output -------------------------------------------------------------------------
    async def commit(self) -> None:
        """Make the update's writes durable (always before telling anyone about them); a
        transaction that has only read is left open for what follows."""
        if self.session.in_transaction() and may_have_written(self.session):
            await self.session.commit()

    async def reply(self, text: str, markup: Markup = None) -> Message:
        """Send a new message to this chat (after committing what was written)."""
        await self.commit()
        return await send(self.context.bot, self.chat_id, text, markup)

    async def show(self, text: str, markup: InlineKeyboardMarkup | None = None) -> None:
        """Replace the pressed menu's message, or send one when this is not a button press.

        The edit is retried like a send; if it still fails (or the message is gone) the text
        is sent as a new message, so the person always learns the outcome of what they did.
        """
        query = self.update.callback_query
        if query is not None and query.message is not None and not self.fresh_screens:
            await self.commit()
            try:
                await edit(self.context.bot, self.chat_id, query.message.message_id, text,
                           markup)
                return
            except TelegramError as exc:
                log.warning("could not update the screen (%s); sending it as a new message",
                            type(exc).__name__)
        await self.reply(text, markup)

    async def answer(self, text: str | None = None, *, alert: bool = False) -> None:
        """Answer the button press (a short toast, or nothing)."""
        query = self.update.callback_query
        if query is not None:
            await self.commit()
            try:
                await query.answer(text, show_alert=alert)
            except BadRequest:
                log.debug("callback query too old to answer")

    async def stale(self) -> None:
        """The button belongs to a menu that is no longer valid."""
        await self.answer(self.t("common.stale"), alert=False)

    async def notify(
        self, user: User, key: str, markup: Markup = None, **params: Any
    ) -> Message | Undelivered:
        """Tell another user something in their language (after committing what was written).

        Never raises for Telegram's sake: the change it reports is already made, so the caller
        gets why the message did not arrive instead, to say so to the person acting.
        """
        await self.commit()
        locale = self.deps.locale_of(user)
        try:
            sent = await send_safely(self.context.bot, user.id, t(locale, key, **params), markup)
        except TelegramError as exc:
            log.warning("could not notify user %s (%s)", user.id, type(exc).__name__)
            return Undelivered.FAILED
        if sent is None:
            return Undelivered.BLOCKED
        await refresh_menu_of(self, user)  # what they are may have changed (added, unbound…)
        return sent


def is_private(update: Update) -> bool:
    chat = update.effective_chat
    return chat is not None and chat.type == ChatType.PRIVATE


async def refuse_group(update: Update, context: ContextTypes.DEFAULT_TYPE, deps: Deps) -> None:
    """Commands in groups answer with a link to the private chat."""
    if update.callback_query is not None:
        await update.callback_query.answer()
        return
    message = update.effective_message
    if message is None:
        return
    from_user = update.effective_user
    locale = deps.default_locale
    if from_user is not None:
        async with deps.sessions() as session:
            known = await session.get(User, from_user.id)
        if known is not None and known.locale:
            locale = known.locale
    link = f"https://t.me/{context.bot.username}"
    await message.reply_text(
        t(locale, "common.private_only", link=link), parse_mode=ParseMode.HTML,
        disable_web_page_preview=True,
    )


async def apologize(update: object, bot: Bot, default_locale: str) -> None:
    """After an unexpected error: ask the user to try again, in the language Telegram reports
    for them (not their saved one: the database may be what failed)."""
    if not isinstance(update, Update) or not is_private(update) or update.effective_chat is None:
        return
    user = update.effective_user
    text = t(locale_from_language_code(user.language_code if user else None, default_locale),
             "common.went_wrong")
    try:
        query = update.callback_query
        if query is not None:
            try:
                await query.answer(text, show_alert=True)
                return
            except BadRequest:
                pass  # answered already, or too old: say it in the chat
        await bot.send_message(update.effective_chat.id, text)
    except TelegramError as exc:
        log.info("could not tell the user about the error either (%s)", type(exc).__name__)


def telegram_name(raw: str | None) -> str:
    """A person's Telegram first name as the bot keeps and shows it: on one line, without
    control or invisible format characters (a bidi override would let "\u202enimdA" show
    as "Admin" on the owner's screens)."""
    return " ".join(drop_controls(raw or "").split())


def entry(
    func: Handler,
) -> Callable[[Update, ContextTypes.DEFAULT_TYPE], Coroutine[Any, Any, None]]:
    """Wrap a handler: private chats only, one session per update, domain errors shown."""

    @functools.wraps(func)
    async def callback(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        deps = deps_of(context)
        if not is_private(update):
            await refuse_group(update, context, deps)
            return
        tg_user = update.effective_user
        if tg_user is None:
            return
        async with deps.sessions() as session:
            user, draft, shop = await touch_user(
                session,
                tg_user.id,
                first_name=telegram_name(tg_user.first_name),
                username=tg_user.username,
                language_code=tg_user.language_code,
                default_locale=deps.default_locale,
                now=deps.clock.now(),
            )
            if session.new or session.dirty:
                await session.commit()  # a first contact survives a refused action
            ctx = Ctx(
                update, context, session, user, deps,
                user_id=tg_user.id, locale=user.locale or deps.default_locale,
                draft=draft, _draft_absent=draft is None,
                _shop=shop, _shop_id=shop.id if shop is not None else None,
            )
            try:
                await func(ctx)
                await ctx.commit()
            except Answered:
                await ctx.commit()
            except DomainError as exc:
                await ctx.rollback()
                await show_error(ctx, exc)

    return callback


async def show_error(ctx: Ctx, exc: DomainError) -> None:
    """Tell the user why an action was refused (a toast for buttons, a message otherwise)."""
    text = ctx.error_text(exc)
    if ctx.update.callback_query is not None:
        if exc.key in ("stale_button", "role_not_found", "account_not_found", "code_not_found"):
            await ctx.answer(ctx.t("common.stale"))
            return
        await ctx.answer()
    await ctx.reply(text)
