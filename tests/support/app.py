"""The real Application, started over the local Bot API with a manual clock, and stopped."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.app import build_application
from bot.config import Settings
from bot.localapi import LocalBotApi, LocalRequest
from models.clock import ManualClock
from tests.harness import Harness


async def start_harness(
    settings: Settings, engine: AsyncEngine, api: LocalBotApi, clock: ManualClock
) -> Harness:
    """Build, initialise and start the Application as ``bot run`` would (no rate limiter)."""
    app = build_application(
        settings, engine=engine, clock=clock, request=LocalRequest(api),
        get_updates_request=LocalRequest(api), rate_limit=False,
    )
    await app.initialize()
    if app.post_init is not None:
        await app.post_init(app)
    await app.start()
    return Harness(app, api, clock)


async def stop_harness(h: Harness) -> None:
    await h.app.stop()
    await h.app.shutdown()
