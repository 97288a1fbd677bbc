"""The Telegram face: one module per conversation, routed by database-backed steps."""

from __future__ import annotations

from telegram.ext import BaseHandler

from handlers import home, onboarding, router


def all_handlers() -> list[BaseHandler]:  # type: ignore[type-arg]
    """Every handler in the order they must be tried: commands first, then the routers."""
    home.register_menu_buttons()
    return [*onboarding.command_handlers(), *router.routing_handlers()]
