"""/service → live view: agents online / on break (小休) / offline with their open chats, the
queue and the longest wait now; today's figures (the day in the shop's time zone, said in the
owner's words): chats, how fast half and 9 in 10 of them got a first answer (p50 / p90), ratings. 🔄 Refresh edits the same card.

Callback data, namespace ``sl``: ``sl:o`` open · ``sl:r`` refresh.
"""

from __future__ import annotations

from handlers.context import Ctx
from handlers.flow import Flow
from handlers.keyboards import button, keyboard
from handlers.service_common import (
    SL,
    agent_names,
    button_shop,
    home_button,
    leave_step,
    status_label,
)
from handlers.service_times import day_words, seconds
from handlers.times import day_bounds, local, shop_zone
from models.service.tables import AgentStatus
from models.service.views import day_figures, live_view

#: the order agents are listed in: who takes chats first
ORDER = (AgentStatus.ONLINE.value, AgentStatus.BREAK.value, AgentStatus.OFFLINE.value)


async def show_live(ctx: Ctx) -> None:
    shop = await ctx.owned_shop()
    shop_id, now = shop.id or 0, ctx.now()
    view = await live_view(ctx.session, ctx.deps.service_policy, shop_id=shop_id, now=now)
    tz = shop_zone(shop, ctx.deps.default_time_zone)
    start, end = day_bounds(now, tz)  # today in the shop's zone
    figures = await day_figures(ctx.session, shop_id=shop_id, start=start, end=end)
    names = await agent_names(ctx, shop)
    agents = sorted(view.agents, key=lambda a: (ORDER.index(a.status) if a.status in ORDER
                                                else len(ORDER), a.agent_id))
    lines = [ctx.t("service_admin.live_title", shop=shop.name, time=local(now, tz).strftime("%H:%M:%S")),
             ctx.t("service_admin.live_counts", online=view.online, on_break=view.on_break,
                   offline=len(view.agents) - view.online - view.on_break), ""]
    if not agents:
        lines.append(ctx.t("service_admin.live_no_agents"))
    for agent in agents:
        lines.append(ctx.t("service_admin.live_agent", status_html=status_label(ctx, agent.status),
                           name=names.get(agent.agent_id, "?"), open=agent.open_chats,
                           cap=agent.cap))
    if figures.first_response_p50 is None or figures.first_response_p90 is None:
        first = ctx.t("service_admin.first_response_none")
    else:
        first = ctx.t("service_admin.first_response",
                      p50=seconds(ctx, figures.first_response_p50),
                      p90=seconds(ctx, figures.first_response_p90))
    ratings = (ctx.t("service_admin.ratings", ratings=figures.ratings,
                     average=f"{figures.rating_average:.1f}")
               if figures.ratings and figures.rating_average is not None
               else ctx.t("service_admin.ratings_none"))
    lines += [
        "",
        ctx.t("service_admin.live_queue", queued=view.queued, offline=view.offline_waiting,
              wait=seconds(ctx, view.longest_wait_seconds)),
        "",
        ctx.t("service_admin.today", date=day_words(ctx, now, tz), chats=figures.chats,
              answered=figures.answered, open=figures.open_now, first_html=first,
              ratings_html=ratings),
    ]
    await ctx.show("\n".join(lines), keyboard(
        [button(ctx.label("service_admin.refresh_button"), f"{SL}:r")], [home_button(ctx)]))


async def on_button(ctx: Ctx, _action: str, _args: list[str]) -> None:
    await button_shop(ctx)
    await leave_step(ctx)
    await ctx.answer()
    await show_live(ctx)


FLOW = Flow(
    name="service_live",
    namespace=SL,
    buttons={"o": (), "r": ()},
    on_button=on_button,
)
