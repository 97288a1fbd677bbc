"""The Telegram face: one module per conversation, each ending with its ``Flow`` literal.

``FLOWS`` is the list ``bot.app.build_application`` builds each application's router from.
Its order is the order of the command menu, of /help and of the owner's home menu, and the
order in which /start asks the flows for their home view and deep links. The one job of
this package is the code-expiry job, ``handlers.expiry`` (planned by ``bot.scheduler``).
"""

from __future__ import annotations

from handlers import (
    access,
    accounts,
    auditlog,
    cancel,
    forget,
    holder,
    holder_code,
    home,
    invite,
    language,
    newaccount,
    newshop,
    onboarding,
    review,
    role_editor,
    roles,
    service_admin,
    service_agent,
    service_chat,
    service_groups,
    service_live,
    service_settings,
    transfer,
)
from handlers import help as help_
from handlers.flow import Flow

FLOWS: tuple[Flow, ...] = (
    onboarding.FLOW,  # /start, phone linking; /start's home before a phone is linked
    newshop.FLOW,  # /newshop
    home.FLOW,  # the owner's home menu on /start
    newaccount.FLOW,  # /newaccount: role → phone → code → nickname → IM → confirm
    accounts.FLOW,  # /accounts: the sub-accounts, rename
    access.FLOW,  # /accounts → an account → Access end (访问期限); the Extend buttons
    roles.FLOW,  # /roles: the role list and one role
    role_editor.FLOW,  # creating and editing a role (also nested in /newaccount)
    service_admin.FLOW,  # /service: the customer-service card, its entries (绑定页面)
    service_groups.FLOW,  # /service → groups (客服分组)
    service_settings.FLOW,  # /service → settings
    service_live.FLOW,  # /service → live view and today's figures
    review.FLOW,  # /review: access reviews (权限复核), their settings; the review job
    auditlog.FLOW,  # /log
    transfer.FLOW,  # /transfer: 主账号更换 — target → what the owner becomes → type the name
    holder.FLOW,  # /me, "Leave shop"; /start's home for a holder
    holder_code.FLOW,  # the holder's code message: "Not me"
    # /start <entry token>: the customer's chat with a shop (客服); before invite.FLOW, which
    # claims any other payload
    service_chat.FLOW,
    invite.FLOW,  # /start <invite token>
    service_agent.FLOW,  # /status /online /break /offline /chats: the agent's side
    language.FLOW,  # /language
    forget.FLOW,  # /forget
    cancel.FLOW,  # /cancel
    help_.FLOW,  # /help
)
