"""/roles through the Application: list, create (preset / blank), edit, delete, nesting."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from bot.app import build_application
from bot.config import Settings
from bot.localapi import LocalBotApi as FakeBotApi
from bot.localapi import LocalRequest as FakeRequest
from handlers import FLOWS
from handlers.context import Ctx, Deps
from handlers.flow import Flow, Step
from models.clock import ManualClock
from models.drafts import save_draft
from models.roles import create_role
from models.tables import AuditEvent, Draft, Role, Shop
from tests.harness import Harness, Person, rows
from tests.support.app import start_harness, stop_harness
from tests.support.domain import write_sub_account
from tests.support.flows import make_owner, onboard, open_new_role
from tests.support.people import HOLDER, HOLDER_PHONE, OTHER_OWNER, OTHER_PHONE, OWNER

STALE = "This menu is no longer valid."
OPERATIONS = ["Home", "Products", "Orders", "Marketing", "Content", "Data"]


# --- helpers ----------------------------------------------------------------------------------


async def role_named(h: Harness, name: str) -> Role:
    found: list[Role] = [r for r in await rows(h, Role) if r.name == name]
    assert found, f"no role {name!r}"
    return found[0]


async def actions(h: Harness) -> list[str]:
    return [e.action for e in await rows(h, AuditEvent) if e.action.startswith("role.")]


async def draft_of(h: Harness, who: Person) -> Draft | None:
    deps: Deps = h.app.bot_data["deps"]
    async with deps.sessions() as session:
        return await session.get(Draft, who.id)


def ticked(h: Harness, who: Any) -> list[str]:
    """The modules ticked on the latest permissions keyboard."""
    return [label[2:] for label in h.last(who).labels if label.startswith("☑ ")]


def unticked(h: Harness, who: Any) -> list[str]:
    return [label[2:] for label in h.last(who).labels if label.startswith("☐ ")]


async def create(h: Harness, name: str, *, preset: str | None = None,
                 description: str | None = None, tick: tuple[str, ...] = ()) -> Role:
    """The owner creates a role through /roles."""
    await open_new_role(h)
    await h.click(OWNER, preset or "Blank")
    await h.text(OWNER, name)
    if description is None:
        await h.click(OWNER, "Skip")
    else:
        await h.text(OWNER, description)
    for module in tick:
        await h.click(OWNER, module)
    await h.click(OWNER, "Done")
    return await role_named(h, " ".join(name.split()))


async def to_permissions(h: Harness, name: str, preset: str = "Blank") -> None:
    """The owner starts a new role from ``preset``, names it ``name`` and skips the
    description: the permissions keyboard is shown."""
    await open_new_role(h)
    await h.click(OWNER, preset)
    await h.text(OWNER, name)
    await h.click(OWNER, "Skip")


# --- the list ---------------------------------------------------------------------------------


async def test_roles_is_for_owners_only(harness: Harness) -> None:
    await onboard(harness, HOLDER, HOLDER_PHONE)
    await harness.command(HOLDER, "/roles")
    assert "You have no shop to manage" in harness.last(HOLDER).text
    await harness.press(HOLDER, "r:new")
    assert "You have no shop to manage" in harness.last(HOLDER).text
    assert await draft_of(harness, HOLDER) is None


async def test_empty_list_from_the_owner_menu(harness: Harness) -> None:
    await make_owner(harness)
    assert "🧩 Roles" in harness.last(OWNER).labels
    await harness.click(OWNER, "🧩 Roles")
    last = harness.last(OWNER)
    assert "Role management — Tea House" in last.text
    assert "no roles yet" in last.text
    assert last.labels == ["➕ New role"]


async def test_list_shows_modules_and_usage_and_pages(harness: Harness) -> None:
    await make_owner(harness)
    await onboard(harness, HOLDER, HOLDER_PHONE)
    ops = await create(harness, "Ops", preset="Operations")
    await create(harness, "Cashier", tick=("Finance",))
    async with harness.app.bot_data["deps"].sessions() as session:
        await write_sub_account(session, role=ops, holder_id=HOLDER.id, phone=HOLDER_PHONE,
                                owner_id=OWNER.id, now=harness.clock.now())
    await harness.command(OWNER, "/roles")
    text = harness.last(OWNER).text
    # module names, not counts; a long list is cut after four names
    assert "1. Ops — Home, Products, Orders, Marketing and 2 more · used by 1 sub-account" in text
    assert "2. Cashier — Finance · not used yet" in text
    assert harness.last(OWNER).labels == ["Ops", "Cashier", "➕ New role"]
    for i in range(3, 10):
        await create(harness, f"Role {i}", tick=("Home",))
    await harness.command(OWNER, "/roles")
    first = harness.last(OWNER)
    assert "Page 1 of 2" in first.text and "9. Role 9" not in first.text
    assert "Role 9" not in first.labels and "Next ▶️" in first.labels
    await harness.click(OWNER, "Next")
    second = harness.last(OWNER)
    assert "9. Role 9" in second.text and "Page 2 of 2" in second.text
    assert second.labels == ["Role 9", "◀️ Previous", "➕ New role"]
    await harness.click(OWNER, "Role 9")
    await harness.click(OWNER, "All roles")
    assert "Page 2 of 2" in harness.last(OWNER).text


# --- creation ---------------------------------------------------------------------------------


async def test_create_from_a_preset(harness: Harness) -> None:
    await make_owner(harness)
    await open_new_role(harness)
    screen = harness.last(OWNER)
    assert "Create new role" in screen.text
    assert "Operations: Home, Products, Orders, Marketing, Content, Data" in screen.text
    assert screen.labels[:4] == ["Operations", "Customer service", "Finance", "Warehouse"]
    assert "📄 Blank" in screen.labels and "⬅️ Back" in screen.labels
    await harness.click(OWNER, "Operations")
    assert "Send the role name (1–30 characters), or /cancel" in harness.last(OWNER).text
    await harness.text(OWNER, "  Ops   Team ")
    assert "Send a short description (up to 200 characters)" in harness.last(OWNER).text
    await harness.text(OWNER, "Runs the <b>shop</b>")
    perms = harness.last(OWNER)
    assert "Permission configuration for Ops Team" in perms.text
    assert "Ticked: 6 of 11" in perms.text
    assert ticked(harness, OWNER) == OPERATIONS
    assert {"Select all", "Clear", "✅ Done"} <= set(perms.labels)
    await harness.click(OWNER, "After-sales")
    assert "After-sales" in ticked(harness, OWNER)
    assert harness.last(OWNER).message_id == perms.message_id  # edited in place
    await harness.click(OWNER, "☑ Home")
    assert "Home" in unticked(harness, OWNER)
    assert "Ticked: 6 of 11" in harness.last(OWNER).text
    assert await rows(harness, Role) == []  # nothing written before Done
    await harness.click(OWNER, "Done")
    card = harness.last(OWNER)
    assert "✅ Role Ops Team created." in card.text
    assert "Description: Runs the <b>shop</b>" in card.text  # shown as typed, not as HTML
    assert "Permissions (6): Products, Orders, After-sales, Marketing, Content, Data" in card.text
    assert {"✏️ Rename", "📝 Description", "🔐 Permissions", "🗑 Delete"} <= set(card.labels)
    [role] = await rows(harness, Role)
    assert (role.name, role.description) == ("Ops Team", "Runs the <b>shop</b>")
    assert role.modules == ["products", "orders", "after_sales", "marketing", "content", "data"]
    assert await actions(harness) == ["role.created"]
    assert await draft_of(harness, OWNER) is None
    assert "✅ Role “Ops Team” created." in harness.answers()


async def test_create_from_blank_with_select_all_clear_and_nothing_ticked(harness: Harness) -> None:
    await make_owner(harness)
    await open_new_role(harness)
    await harness.click(OWNER, "Blank")
    assert "Call it" not in " ".join(harness.last(OWNER).labels)
    await harness.text(OWNER, "Cashier")
    await harness.click(OWNER, "Skip")
    assert ticked(harness, OWNER) == []
    keyboard = harness.last(OWNER)
    await harness.click(OWNER, "Done")
    assert harness.answers()[-1] == "A role needs at least one module: tick one, then tap Done."
    assert harness.last(OWNER) == keyboard  # the keyboard stays as it was
    assert await rows(harness, Role) == []
    await harness.click(OWNER, "Select all")
    assert len(ticked(harness, OWNER)) == 11 and unticked(harness, OWNER) == []
    await harness.click(OWNER, "Clear")
    assert ticked(harness, OWNER) == [] and len(unticked(harness, OWNER)) == 11
    await harness.click(OWNER, "Finance")
    await harness.click(OWNER, "Orders")
    assert ticked(harness, OWNER) == ["Orders", "Finance"]
    await harness.click(OWNER, "Done")
    assert "Description: no description" in harness.last(OWNER).text
    role = await role_named(harness, "Cashier")
    assert (role.description, role.modules) == ("", ["orders", "finance"])


async def test_preset_name_button_and_a_taken_name(harness: Harness) -> None:
    await make_owner(harness)
    await open_new_role(harness)
    await harness.click(OWNER, "Finance")
    assert "Preset: Finance (Home, Orders, Data, Finance)" in harness.last(OWNER).text
    await harness.click(OWNER, "Call it “Finance”")
    assert "Role description for Finance" in harness.last(OWNER).text
    await harness.click(OWNER, "Skip")
    assert ticked(harness, OWNER) == ["Home", "Orders", "Data", "Finance"]
    await harness.click(OWNER, "Done")
    await open_new_role(harness)
    await harness.click(OWNER, "Finance")
    prompt = harness.last(OWNER)
    await harness.click(OWNER, "Call it “Finance”")
    assert "already has a role called “Finance”" in harness.answers()[-1]
    assert harness.last(OWNER) == prompt
    draft = await draft_of(harness, OWNER)
    assert draft is not None and draft.step == "name"


async def test_names_are_checked_when_entered(harness: Harness) -> None:
    await make_owner(harness)
    await create(harness, "Ops Team", tick=("Home",))
    await open_new_role(harness)
    await harness.click(OWNER, "Blank")
    shown = await harness.text(OWNER, "  ops   TEAM ")
    assert len(shown) == 1
    assert "already has a role called “ops TEAM”" in shown[0].text
    assert "Send the role name (1–30 characters)" in shown[0].text
    shown = await harness.text(OWNER, "x" * 31)
    assert "too long (31 characters); 30 at most" in shown[0].text
    assert "Send the role name" in shown[0].text
    await harness.sticker(OWNER)
    assert "Send the role name" in harness.last(OWNER).text
    draft = await draft_of(harness, OWNER)
    assert draft is not None and draft.step == "name"
    await harness.text(OWNER, "Ops Team 2")
    assert "Role description for Ops Team 2" in harness.last(OWNER).text
    shown = await harness.text(OWNER, "d" * 201)
    assert "too long (201 characters); 200 at most" in shown[0].text
    assert "Send a short description" in shown[0].text
    await harness.text(OWNER, "Second shift")
    await harness.click(OWNER, "Home")
    await harness.click(OWNER, "Done")
    assert [r.name for r in await rows(harness, Role)] == ["Ops Team", "Ops Team 2"]


async def test_a_name_taken_before_done_asks_for_another(harness: Harness) -> None:
    await make_owner(harness)
    await to_permissions(harness, "Packer")
    await harness.click(OWNER, "Logistics")
    deps = harness.app.bot_data["deps"]
    async with deps.sessions() as session:  # the name is taken meanwhile, elsewhere
        shop = (await session.exec(select(Shop))).one()
        await create_role(session, deps.policy, shop_id=shop.id or 0, actor_id=OWNER.id,
                          name="PACKER", description="", modules=["home"],
                          now=harness.clock.now())
        await session.commit()
    await harness.click(OWNER, "Done")
    last = harness.last(OWNER)
    assert "already has a role called “Packer”" in last.text
    assert "Send the role name (1–30 characters)" in last.text
    draft = await draft_of(harness, OWNER)
    assert draft is not None and (draft.step, draft.data["modules"]) == ("name", ["logistics"])
    await harness.text(OWNER, "Packer 2")
    await harness.click(OWNER, "Skip")
    assert ticked(harness, OWNER) == ["Logistics"]
    await harness.click(OWNER, "Done")
    assert [r.name for r in await rows(harness, Role)] == ["PACKER", "Packer 2"]


async def test_an_old_keyboard_of_a_replaced_flow_is_stale(harness: Harness) -> None:
    await make_owner(harness)
    await to_permissions(harness, "Packer")
    await harness.click(OWNER, "Logistics")
    first = harness.last(OWNER)
    await harness.command(OWNER, "/roles")  # the unsaved role is not dropped silently
    assert "You have unsaved work: the new role “Packer”" in harness.last(OWNER).text
    await harness.click(OWNER, "Discard")
    await harness.click(OWNER, "New role")
    await harness.click(OWNER, "Blank")
    await harness.text(OWNER, "Picker")
    await harness.click(OWNER, "Skip")
    second = harness.last(OWNER)
    # the first keyboard is at the same step, but of a flow that was replaced
    for label in ("Home", "Select all", "Done"):
        await harness.press(OWNER, first.button(label), message_id=first.message_id)
    assert harness.answers()[-3:] == [STALE] * 3
    assert harness.last(OWNER) == second
    draft = await draft_of(harness, OWNER)
    assert draft is not None and (draft.data["name"], draft.data["modules"]) == ("Picker", [])
    assert await rows(harness, Role) == []
    await harness.click(OWNER, "Home")
    await harness.click(OWNER, "Done")
    assert [(r.name, r.modules) for r in await rows(harness, Role)] == [("Picker", ["home"])]
    await harness.press(OWNER, first.button("Done"), message_id=first.message_id)
    assert harness.answers()[-1] == STALE
    assert len(await rows(harness, Role)) == 1


async def test_cancel_mid_creation_writes_nothing(harness: Harness) -> None:
    await make_owner(harness)
    await open_new_role(harness)
    await harness.click(OWNER, "Warehouse")
    await harness.text(OWNER, "Stock")
    await harness.text(OWNER, "Keeps the stock")
    await harness.click(OWNER, "Select all")
    done = harness.last(OWNER).button("Done")
    await harness.command(OWNER, "/cancel")
    assert "Cancelled. Nothing was saved." in harness.last(OWNER).text
    assert await draft_of(harness, OWNER) is None
    await harness.press(OWNER, done)
    assert harness.answers()[-1] == STALE
    await harness.text(OWNER, "Stock")
    assert "not waiting for anything" in harness.last(OWNER).text
    assert await rows(harness, Role) == []
    assert await actions(harness) == []


async def test_a_restart_mid_creation_loses_nothing(
    harness: Harness, settings: Settings, engine: AsyncEngine, api: FakeBotApi, clock: ManualClock
) -> None:
    await make_owner(harness)
    await to_permissions(harness, "Support", "Customer service")
    await harness.click(OWNER, "After-sales")
    await harness.click(OWNER, "Content")
    # a new Application on the same database: nothing of the flow lived in memory
    again = await start_harness(settings, engine, api, clock)
    try:
        await again.click(OWNER, "Done")
        role = await role_named(again, "Support")
        assert role.modules == ["home", "orders", "content", "customer_service"]
    finally:
        await stop_harness(again)


async def test_text_where_buttons_are_expected_gets_the_buttons_again(harness: Harness) -> None:
    await make_owner(harness)
    await open_new_role(harness)
    shown = await harness.text(OWNER, "Ops")
    assert "Please use the buttons below." in shown[0].text
    assert "Create new role" in shown[1].text and "Operations" in shown[1].labels


# --- editing ----------------------------------------------------------------------------------


async def test_rename(harness: Harness) -> None:
    await make_owner(harness)
    await create(harness, "Finance", tick=("Finance",))
    ops = await create(harness, "Ops", tick=("Home",))
    await harness.click(OWNER, "Rename")
    assert "Send the new name for the role Ops (1–30 characters), or /cancel" in (
        harness.last(OWNER).text)
    shown = await harness.text(OWNER, "FINANCE")
    assert "already has a role called “FINANCE”" in shown[0].text
    assert "Send the new name" in shown[0].text
    await harness.text(OWNER, "Ops")
    assert "Nothing changed." in harness.last(OWNER).text
    await harness.click(OWNER, "Rename")
    await harness.text(OWNER, "  Store  operations ")
    assert "✅ Renamed to Store operations." in harness.last(OWNER).text
    assert "Role: Store operations" in harness.last(OWNER).text
    await harness.click(OWNER, "Rename")
    await harness.text(OWNER, "STORE operations")  # a change of case is allowed
    renamed = await rows(harness, Role)
    assert [r.name for r in renamed] == ["Finance", "STORE operations"]
    assert renamed[1].id == ops.id
    assert await actions(harness) == ["role.created"] * 2 + ["role.renamed"] * 2
    assert await draft_of(harness, OWNER) is None


async def test_rename_back_button_changes_nothing(harness: Harness) -> None:
    await make_owner(harness)
    await create(harness, "Ops", tick=("Home",))
    await harness.click(OWNER, "Rename")
    await harness.click(OWNER, "Back")
    assert "Role: Ops" in harness.last(OWNER).text
    assert await draft_of(harness, OWNER) is None
    await harness.text(OWNER, "Other")
    assert "not waiting for anything" in harness.last(OWNER).text
    assert [r.name for r in await rows(harness, Role)] == ["Ops"]


async def test_description_skipped_then_edited_then_removed(harness: Harness) -> None:
    await make_owner(harness)
    await create(harness, "Ops", tick=("Home",))
    assert "Description: no description" in harness.last(OWNER).text
    await harness.click(OWNER, "Description")
    prompt = harness.last(OWNER)
    assert "Now: no description" in prompt.text
    assert "Send the new description (up to 200 characters)" in prompt.text
    assert "🧹 Remove the description" not in prompt.labels
    shown = await harness.text(OWNER, "d" * 201)
    assert "too long (201 characters)" in shown[0].text
    assert "Send the new description" in shown[0].text
    await harness.text(OWNER, "Runs the shop floor")
    assert "✅ Description saved." in harness.last(OWNER).text
    assert "Description: Runs the shop floor" in harness.last(OWNER).text
    assert (await role_named(harness, "Ops")).description == "Runs the shop floor"
    await harness.click(OWNER, "Description")
    assert "Now: Runs the shop floor" in harness.last(OWNER).text
    await harness.click(OWNER, "Remove the description")
    assert "✅ Description removed." in harness.last(OWNER).text
    assert (await role_named(harness, "Ops")).description == ""
    assert await actions(harness) == ["role.created", "role.described", "role.described"]


async def test_edit_permissions_back_and_done(harness: Harness) -> None:
    await make_owner(harness)
    await create(harness, "Ops", preset="Finance")
    await harness.click(OWNER, "🔐 Permissions")
    assert "Permission configuration for Ops" in harness.last(OWNER).text
    assert ticked(harness, OWNER) == ["Home", "Orders", "Data", "Finance"]
    await harness.click(OWNER, "Clear")
    await harness.click(OWNER, "Back")
    assert "Permissions (4): Home, Orders, Data, Finance" in harness.last(OWNER).text
    assert (await role_named(harness, "Ops")).modules == ["home", "orders", "data", "finance"]
    await harness.click(OWNER, "🔐 Permissions")
    await harness.click(OWNER, "Clear")
    await harness.click(OWNER, "Done")
    assert "at least one module" in harness.answers()[-1]
    await harness.click(OWNER, "Data")
    await harness.click(OWNER, "Customer service")
    await harness.click(OWNER, "Done")
    assert "✅ Permissions saved." in harness.last(OWNER).text
    assert "Permissions (2): Data, Customer service" in harness.last(OWNER).text
    assert (await role_named(harness, "Ops")).modules == ["data", "customer_service"]
    await harness.click(OWNER, "🔐 Permissions")
    await harness.click(OWNER, "Done")
    assert "Nothing changed." in harness.last(OWNER).text
    assert await actions(harness) == ["role.created", "role.permissions"]


# --- delete -----------------------------------------------------------------------------------


async def test_delete_unused_role_after_confirming(harness: Harness) -> None:
    await make_owner(harness)
    await create(harness, "Ops", tick=("Home",))
    await harness.click(OWNER, "Delete")
    assert "Delete the role Ops? This can't be undone." in harness.last(OWNER).text
    await harness.click(OWNER, "No, keep it")
    assert "Role: Ops" in harness.last(OWNER).text
    assert len(await rows(harness, Role)) == 1
    await harness.click(OWNER, "Delete")
    await harness.click(OWNER, "Yes, delete it")
    assert "🗑 Role Ops deleted." in harness.last(OWNER).text
    assert "no roles yet" in harness.last(OWNER).text
    assert await rows(harness, Role) == []
    assert await actions(harness) == ["role.created", "role.deleted"]


async def test_delete_in_use_is_refused_with_the_count(harness: Harness) -> None:
    await make_owner(harness)
    ops = await create(harness, "Ops", tick=("Home",))
    async with harness.app.bot_data["deps"].sessions() as session:
        await write_sub_account(session, role=ops, holder_id=HOLDER.id, phone=HOLDER_PHONE,
                                owner_id=OWNER.id, now=harness.clock.now())
        await write_sub_account(session, role=ops, holder_id=2003, phone="+8613900139001",
                                owner_id=OWNER.id, now=harness.clock.now())
    await harness.click(OWNER, "Delete")
    refusal = "The role “Ops” is used by 2 sub-accounts. Give them another role first."
    assert refusal in harness.last(OWNER).text
    assert refusal in harness.answers()[-1]
    assert "used by 2 sub-accounts" in harness.last(OWNER).text
    await harness.press(OWNER, f"r:yes:{ops.id}")  # a forged confirmation is refused too
    assert refusal in harness.answers()[-1]
    assert [r.id for r in await rows(harness, Role)] == [ops.id]
    assert "role.deleted" not in await actions(harness)


async def test_delete_refused_for_a_real_sub_account(harness: Harness) -> None:
    from models.accounts import confirm_sub_account
    from models.codes import issue_code, verify_code

    await make_owner(harness)
    await onboard(harness, HOLDER, HOLDER_PHONE)
    role = await create(harness, "Support", preset="Customer service")
    deps = harness.app.bot_data["deps"]
    async with deps.sessions() as session:
        shop = (await session.exec(select(Shop))).one()
        issued = await issue_code(session, deps.policy, shop_id=shop.id, owner_id=OWNER.id,
                                  role_id=role.id, phone=HOLDER_PHONE, now=harness.clock.now())
        await verify_code(session, deps.policy, code_id=issued.code.id or 0, owner_id=OWNER.id,
                          entered=issued.plain, now=harness.clock.now())
        await confirm_sub_account(session, shop=shop, owner_id=OWNER.id,
                                  code_id=issued.code.id or 0, role_id=role.id or 0,
                                  nickname="Hank", im_enabled=True, now=harness.clock.now())
        await session.commit()
    await harness.command(OWNER, "/roles")
    assert "used by 1 sub-account" in harness.last(OWNER).text
    await harness.click(OWNER, "Support")
    await harness.click(OWNER, "Delete")
    assert "is used by 1 sub-account." in harness.last(OWNER).text
    assert len(await rows(harness, Role)) == 1


async def test_buttons_of_a_deleted_role_are_stale(harness: Harness) -> None:
    await make_owner(harness)
    ops = await create(harness, "Ops", tick=("Home",))
    card = harness.last(OWNER)
    await harness.click(OWNER, "Delete")
    await harness.click(OWNER, "Yes, delete it")
    before = len(harness.api.calls)
    for label in ("Rename", "Description", "Permissions", "Delete"):
        await harness.press(OWNER, card.button(label), message_id=card.message_id)
    await harness.press(OWNER, f"r:o:{ops.id}")
    await harness.press(OWNER, f"r:yes:{ops.id}")
    assert harness.answers()[-6:] == [STALE] * 6
    assert [c.method for c in harness.api.calls[before:]] == ["answerCallbackQuery"] * 6
    assert await draft_of(harness, OWNER) is None


async def test_editing_a_role_deleted_meanwhile_ends_the_edit(harness: Harness) -> None:
    await make_owner(harness)
    await create(harness, "Ops", tick=("Home",))
    card = harness.last(OWNER)
    await harness.click(OWNER, "Rename")
    await harness.press(OWNER, card.button("Delete"))  # an older copy of the card
    await harness.click(OWNER, "Yes, delete it")
    await harness.text(OWNER, "Operations")
    assert "That role no longer exists." in harness.last(OWNER).text
    assert await draft_of(harness, OWNER) is None
    assert await rows(harness, Role) == []


# --- other people's buttons -------------------------------------------------------------------


async def test_another_owner_cannot_use_my_roles_buttons(harness: Harness) -> None:
    await make_owner(harness)
    ops = await create(harness, "Ops", description="Mine", tick=("Home",))
    await make_owner(harness, OTHER_OWNER, OTHER_PHONE, shop="Noodle Bar")
    for data in (f"r:o:{ops.id}", f"r:ren:{ops.id}", f"r:des:{ops.id}", f"r:per:{ops.id}",
                 f"r:del:{ops.id}", f"r:yes:{ops.id}"):
        await harness.press(OTHER_OWNER, data)
    assert harness.answers()[-6:] == [STALE] * 6
    assert await draft_of(harness, OTHER_OWNER) is None
    # the owner's own flow buttons do not work from another account either
    await harness.command(OWNER, "/roles")
    await harness.click(OWNER, "Ops")
    await harness.click(OWNER, "Permissions")
    toggle = harness.last(OWNER).button("Finance")
    await harness.press(OTHER_OWNER, toggle)
    assert harness.answers()[-1] == STALE
    [role] = await rows(harness, Role)
    assert (role.name, role.description, role.modules) == ("Ops", "Mine", ["home"])
    assert await actions(harness) == ["role.created"]
    await harness.command(OTHER_OWNER, "/roles")
    assert "no roles yet" in harness.last(OTHER_OWNER).text


async def test_malformed_and_out_of_step_buttons_are_stale(harness: Harness) -> None:
    await make_owner(harness)
    await open_new_role(harness)
    preset_screen = harness.last(OWNER)
    nonce = preset_screen.button("Blank").split(":")[2]
    await harness.click(OWNER, "Blank")
    for data in (
        preset_screen.button("Operations"),  # the preset step is over
        f"rn:skip:{nonce}",  # not at the description step yet
        f"rn:t:{nonce}:home",  # not at the permissions step
        f"rn:use:{int(nonce) + 1}",  # another draft's nonce
        "r:o:abc", "r:o", "rn:t:1:a:b", "r:zap:1", "rn:p:1:bad key",
    ):
        await harness.press(OWNER, data)
    assert harness.answers()[-9:] == [STALE] * 9
    draft = await draft_of(harness, OWNER)
    assert draft is not None and (draft.step, draft.data["modules"]) == ("name", [])


# --- nested creation --------------------------------------------------------------------------


@pytest.fixture
async def parent_flow(
    harness: Harness, settings: Settings, engine: AsyncEngine, api: FakeBotApi
) -> AsyncIterator[list[tuple[int | None, dict[str, object]]]]:
    """A test flow "tparent" that starts role creation when sent "go" and records the return
    (the harness's application is rebuilt with it added to the flows)."""
    returned: list[tuple[int | None, dict[str, object]]] = []

    async def prompt(ctx: Ctx) -> None:
        await ctx.reply("Parent: send go")

    async def on_text(ctx: Ctx, _text: str) -> None:
        await ctx.router.start_nested(ctx, "roles", "preset", return_to="tparent",
                                      parent_data={"phone": "+8613900139000", "n": 7})

    async def back(ctx: Ctx, role_id: int | None, data: dict[str, object]) -> None:
        returned.append((role_id, data))
        await ctx.start_flow("tparent", "go", dict(data))
        await ctx.reply(f"Parent again, role {role_id}")

    tparent = Flow(name="tparent", steps={"go": Step(ask=prompt, on_text=on_text)}, on_return=back)
    await stop_harness(harness)
    app = build_application(
        settings, engine=engine, clock=harness.clock, request=FakeRequest(api),
        get_updates_request=FakeRequest(api), rate_limit=False, flows=(*FLOWS, tparent),
    )
    await app.initialize()
    if app.post_init is not None:
        await app.post_init(app)
    await app.start()
    harness.app = app  # stopped by the harness fixture
    yield returned


async def enter_parent(h: Harness) -> None:
    async with h.app.bot_data["deps"].sessions() as session:
        await save_draft(session, OWNER.id, "tparent", "go", {}, h.clock.now())
        await session.commit()
    await h.text(OWNER, "go")


async def test_nested_creation_returns_the_new_role(
    harness: Harness, parent_flow: list[tuple[int | None, dict[str, object]]]
) -> None:
    await make_owner(harness)
    await enter_parent(harness)
    assert "Create new role" in harness.last(OWNER).text
    await harness.click(OWNER, "Customer service")
    await harness.text(OWNER, "Support")
    await harness.click(OWNER, "Skip")
    await harness.click(OWNER, "Done")
    role = await role_named(harness, "Support")
    assert parent_flow == [(role.id, {"phone": "+8613900139000", "n": 7})]
    assert harness.last(OWNER).text == f"Parent again, role {role.id}"
    assert not any("Role: Support" in m.text for m in harness.messages(OWNER))
    draft = await draft_of(harness, OWNER)
    assert draft is not None and (draft.flow, draft.data) == (
        "tparent", {"phone": "+8613900139000", "n": 7})


async def test_nested_creation_back_returns_none(
    harness: Harness, parent_flow: list[tuple[int | None, dict[str, object]]]
) -> None:
    await make_owner(harness)
    await enter_parent(harness)
    await harness.click(OWNER, "Back")
    assert parent_flow == [(None, {"phone": "+8613900139000", "n": 7})]
    assert harness.last(OWNER).text == "Parent again, role None"
    assert await rows(harness, Role) == []


async def test_cancel_inside_nested_creation_writes_nothing(
    harness: Harness, parent_flow: list[tuple[int | None, dict[str, object]]]
) -> None:
    await make_owner(harness)
    await enter_parent(harness)
    await harness.click(OWNER, "Blank")
    await harness.text(OWNER, "Packer")
    await harness.click(OWNER, "Skip")
    await harness.click(OWNER, "Logistics")
    await harness.command(OWNER, "/cancel")
    assert "Cancelled. Nothing was saved." in harness.last(OWNER).text
    assert parent_flow == []
    assert await draft_of(harness, OWNER) is None
    assert await rows(harness, Role) == []


async def test_non_nested_back_returns_to_the_list(harness: Harness) -> None:
    await make_owner(harness)
    await open_new_role(harness)
    await harness.click(OWNER, "Back")
    assert "Role management" in harness.last(OWNER).text
    assert await draft_of(harness, OWNER) is None


# --- 简体中文 -----------------------------------------------------------------------------------


async def test_chinese_screens(harness: Harness) -> None:
    await make_owner(harness)
    await harness.command(OWNER, "/language")
    await harness.click(OWNER, "简体中文")
    await harness.command(OWNER, "/roles")
    assert "岗位管理 — Tea House" in harness.last(OWNER).text
    await harness.click(OWNER, "创建新岗位")
    screen = harness.last(OWNER)
    assert "创建新岗位" in screen.text and "运营：首页、商品、订单、营销、内容、数据" in screen.text
    assert screen.labels[:4] == ["运营", "客服", "财务", "仓管"]
    await harness.click(OWNER, "仓管")
    assert "岗位名称" in harness.last(OWNER).text
    await harness.click(OWNER, "命名为“仓管”")
    assert "岗位描述" in harness.last(OWNER).text
    await harness.click(OWNER, "跳过")
    assert "权限配置" in harness.last(OWNER).text
    assert ticked(harness, OWNER) == ["首页", "订单", "售后", "物流"]
    await harness.click(OWNER, "清空")
    await harness.click(OWNER, "完成")
    assert harness.answers()[-1] == "岗位至少需要一个模块：请勾选后再点击“完成”。"
    await harness.click(OWNER, "全选")
    await harness.click(OWNER, "完成")
    card = harness.last(OWNER).text
    assert "✅ 岗位 仓管 已创建。" in card and "权限配置（11个模块）" in card
    assert "暂无描述" in card
    roles = await rows(harness, Role)
    assert [(r.name, len(r.modules)) for r in roles] == [("仓管", 11)]
    events = [e for e in await rows(harness, AuditEvent) if e.action == "role.created"]
    assert events[0].actor_id == OWNER.id
    assert [e.object_id for e in events] == [str(roles[0].id)]
