"""What the /service screens share (not a conversation): the callback namespaces of its four
flows, the home card, who the agents are called, leaving a typed step, sending a QR photo.

The owner's /service is four flows, each with its own namespace: ``sv`` the menu and the
entries (``handlers.service_admin``), ``sg`` the groups (``handlers.service_groups``), ``ss``
the settings (``handlers.service_settings``), ``sl`` the live view (``handlers.service_live``).
Every screen has a way back; every id in a button is re-checked against the presser's shop.
"""

from __future__ import annotations

import io

import segno
from sqlmodel import col, select
from telegram import InlineKeyboardButton

from handlers.card import with_notice
from handlers.context import Answered, Ctx
from handlers.keyboards import button, keyboard
from handlers.telegram_io import with_retry
from models.errors import DomainError
from models.service.agents import agent_for, agents_of
from models.service.entries import list_entries
from models.service.groups import list_groups
from models.service.tables import AgentKind, AgentStatus
from models.tables import AccountStatus, Shop, SubAccount

#: the callback namespaces of the /service flows
SV, SG, SS, SL = "sv", "sg", "ss", "sl"
#: the draft flow names of the /service flows that have typed steps
FLOW_NAMES = ("service", "service_groups", "service_settings")
#: a QR code's module size in pixels and quiet zone (segno's default 4 modules)
QR_SCALE = 8


def home_button(ctx: Ctx) -> InlineKeyboardButton:
    return button(ctx.label("service_admin.home_button"), f"{SV}:home")


def back_button(ctx: Ctx, data: str) -> InlineKeyboardButton:
    return button(ctx.label("common.back"), data)


async def ask_to_confirm(
    ctx: Ctx, text: str, yes_key: str, yes_data: str, back_data: str
) -> None:
    """A question with its Yes button (``yes_key``) and Back: nothing happens until Yes."""
    await ctx.answer()
    await ctx.show(text, keyboard([button(ctx.label(yes_key), yes_data),
                                   back_button(ctx, back_data)]))


async def shop_of(ctx: Ctx) -> Shop:
    """The presser's own shop (``no_shop`` for anyone else)."""
    return await ctx.owned_shop()


async def button_shop(ctx: Ctx) -> Shop:
    """The shop of whoever pressed a /service button; anyone without one (staff, a stranger,
    a forged button) is told the menu is no longer valid, and nothing more happens."""
    shop = await ctx.shop_or_none()
    if shop is None:
        await ctx.stale()
        raise Answered
    return shop


async def leave_step(ctx: Ctx) -> None:
    """A /service button was pressed: a typed step of /service the owner was at is left (a
    later text is not taken for it); any other conversation is left alone."""
    draft = await ctx.load_draft()
    if draft is not None and draft.flow in FLOW_NAMES:
        await ctx.end_flow()


async def step_data(ctx: Ctx, flow: str) -> dict[str, object]:
    """The draft data of a typed step of ``flow``, or stale (a button of a step the owner has
    left, or of someone else's menu)."""
    draft = await ctx.load_draft()
    if draft is None or draft.flow != flow:
        await ctx.stale()
        raise Answered
    return dict(draft.data)


def is_not_found(exc: DomainError) -> bool:
    """A refusal meaning the thing a button named is gone (or was never the presser's)."""
    return exc.key.endswith("_not_found")


async def agent_names(ctx: Ctx, shop: Shop) -> dict[int, str]:
    """Every agent of the shop (by agent id) as the owner knows them: a sub-account's
    nickname (昵称), or "you" for the owner."""
    agents = await agents_of(ctx.session, shop_id=shop.id or 0)
    nicknames = dict((await ctx.session.exec(
        select(SubAccount.id, SubAccount.nickname)
        .where(col(SubAccount.shop_id) == shop.id))).all())
    names: dict[int, str] = {}
    for agent in agents:
        if agent.kind == AgentKind.OWNER.value:
            names[agent.id or 0] = ctx.label("service_admin.owner_name")
        else:
            names[agent.id or 0] = nicknames.get(agent.account_id or 0) or ctx.label(
                "service_admin.former_agent")
    return names


async def im_accounts(ctx: Ctx, shop: Shop) -> list[SubAccount]:
    """The shop's agents-to-be among its sub-accounts: authorized, with IM on."""
    rows = await ctx.session.exec(
        select(SubAccount).where(col(SubAccount.shop_id) == shop.id,
                                 col(SubAccount.im_enabled).is_(True),
                                 col(SubAccount.status) == AccountStatus.AUTHORIZED.value)
        .order_by(col(SubAccount.nickname), col(SubAccount.id)))
    return list(rows.all())


def status_label(ctx: Ctx, status: str) -> str:
    known = {s.value for s in AgentStatus}
    return ctx.t(f"service_admin.status_{status}" if status in known else "service_admin.status_offline")


async def show_home(ctx: Ctx, *, notice: str = "", fresh: bool = False) -> None:
    """The /service card: how many entries, groups and agents, and where to go."""
    shop = await shop_of(ctx)
    shop_id = shop.id or 0
    entries = await list_entries(ctx.session, shop_id=shop_id)
    groups = await list_groups(ctx.session, shop_id=shop_id)
    agents = [a for a in await agents_of(ctx.session, shop_id=shop_id) if a.active]
    online = sum(a.status == AgentStatus.ONLINE.value for a in agents)
    me = await agent_for(ctx.session, shop_id=shop_id, user_id=ctx.user_id)
    answering = me is not None and me.active
    text = ctx.t(
        "service_admin.home", shop=shop.name, entries=len(entries), groups=len(groups),
        agents=len(agents), online=online,
        me_html=ctx.t("service_admin.me_on" if answering else "service_admin.me_off"),
    )
    markup = keyboard(
        [button(ctx.label("service_admin.entries_button"), f"{SV}:el"),
         button(ctx.label("service_admin.groups_button"), f"{SG}:l")],
        [button(ctx.label("service_admin.settings_button"), f"{SS}:o"),
         button(ctx.label("service_admin.live_button"), f"{SL}:o")],
        [button(ctx.label("service_admin.me_stop_button" if answering
                          else "service_admin.me_start_button"), f"{SV}:me")],
    )
    if fresh:
        await ctx.reply(with_notice(notice, text), markup)
    else:
        await ctx.show(with_notice(notice, text), markup)


def deep_link(ctx: Ctx, token: str) -> str:
    """The entry's link: ``https://t.me/<bot>?start=<token>`` (the bot's name from getMe)."""
    return f"https://t.me/{ctx.context.bot.username}?start={token}"


def qr_png(link: str) -> bytes:
    """A QR code of ``link`` as a PNG."""
    out = io.BytesIO()
    segno.make(link, error="m").save(out, kind="png", scale=QR_SCALE)
    return out.getvalue()


async def send_qr(ctx: Ctx, link: str, caption: str) -> None:
    """Send the QR code of ``link`` to the owner as a photo with ``caption`` (HTML)."""
    png = qr_png(link)
    await ctx.commit()
    await with_retry(lambda: ctx.context.bot.send_photo(
        ctx.chat_id, photo=png, caption=caption, parse_mode="HTML", filename="entry-qr.png"))
