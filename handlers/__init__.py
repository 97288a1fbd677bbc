"""The Telegram face: one module per conversation, routed by database-backed steps."""

from __future__ import annotations

from telegram.ext import BaseHandler

# Import order is the owner menu's order (each module adds its own entry to ``home.MENU``).
from handlers import (
    accounts,
    auditlog,
    forget,
    holder,
    home,
    onboarding,
    provisioning,
    roles,
    router,
)

CONVERSATIONS = (onboarding, provisioning, accounts, roles, auditlog, holder, forget)


def all_handlers() -> list[BaseHandler]:  # type: ignore[type-arg]
    """Every handler in the order they must be tried: commands first, then the routers."""
    home.register_menu_buttons()
    commands = [h for module in CONVERSATIONS for h in module.command_handlers()]
    return [*commands, *router.routing_handlers()]
