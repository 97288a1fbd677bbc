"""(being written)"""

from __future__ import annotations

from telegram.ext import BaseHandler


def command_handlers() -> list[BaseHandler]:  # type: ignore[type-arg]
    """This module's commands."""
    return []
