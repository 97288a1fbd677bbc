"""Whole conversations walked through the chat, as the people in them would: the set-ups most
tests start from."""

from __future__ import annotations

from typing import Any

from tests.harness import Harness, Person, Shown
from tests.support.domain import add_role, add_sub_account, holder_code
from tests.support.people import HOLDER, HOLDER_PHONE, OWNER, OWNER_PHONE


async def onboard(h: Harness, who: Person, phone: str) -> None:
    """``who`` sends /start and shares their own phone."""
    await h.command(who, "/start")
    await h.contact(who, phone)


async def make_owner(h: Harness, who: Person = OWNER, phone: str = OWNER_PHONE,
                     shop: str = "Tea House") -> None:
    """``who`` links their phone and creates a shop."""
    await onboard(h, who, phone)
    await h.command(who, "/newshop")
    await h.text(who, shop)


async def standard_setup(h: Harness) -> None:
    """Olivia owns Tea House; Hank has linked his phone."""
    await make_owner(h)
    await onboard(h, HOLDER, HOLDER_PHONE)


async def open_new_role(h: Harness) -> None:
    """The owner opens /roles and taps New role: the preset step of role creation."""
    await h.command(OWNER, "/roles")
    await h.click(OWNER, "New role")


async def to_code_step(h: Harness, *, owner: Person = OWNER, phone: str = HOLDER_PHONE) -> int:
    """Owner and holder onboarded, role chosen, phone entered: the owner waits for the code."""
    role_id = await add_role(h, owner)
    await h.command(owner, "/newaccount")
    await h.press(owner, f"na:role:{role_id}")
    await h.text(owner, phone)
    return role_id


async def to_confirm_step(h: Harness, owner: Person = OWNER, holder: Person = HOLDER) -> None:
    """From the code step: the holder's code entered, the suggested nickname taken, IM on."""
    await h.text(owner, holder_code(h, holder))
    await h.click(owner, "Use “")
    await h.press(owner, "na:im:1")


async def setup_hank(h: Harness, **kw: Any) -> int:
    """Olivia's shop Tea House with Hank as an Operations sub-account (``kw``: as for
    ``add_sub_account``)."""
    await make_owner(h)
    await onboard(h, HOLDER, HOLDER_PHONE)
    return await add_sub_account(h, holder=HOLDER, phone=HOLDER_PHONE, **kw)


async def open_hank(h: Harness) -> None:
    """The owner opens Hank's account from /accounts."""
    await h.command(OWNER, "/accounts")
    await h.click(OWNER, "Hank")


def card(h: Harness, who: Person) -> Shown:
    """The message the bot last sent or edited in ``who``'s chat (a flow's card, edited in
    place, is not always the newest message)."""
    for call in reversed(h.api.calls):
        if call.method in ("sendMessage", "editMessageText") and isinstance(call.result, dict) \
                and int(call.params.get("chat_id", 0)) == who.id:
            return h.message(who, int(call.result["message_id"]))
    raise AssertionError(f"the bot never wrote to {who.first_name}")


async def flow_card(h: Harness, who: Person = OWNER) -> Shown:
    """The card of ``who``'s /newaccount (its message id is kept in their draft)."""
    from models.tables import Draft
    from tests.harness import rows

    for draft in await rows(h, Draft):
        if draft.user_id == who.id and "card" in draft.data:
            return h.message(who, int(draft.data["card"]))
    raise AssertionError(f"{who.first_name} has no /newaccount card")
