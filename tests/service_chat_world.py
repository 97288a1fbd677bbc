"""A shop for the customer-relay tests through the Application: Olivia owns Tea House, Hank
and Amy are IM sub-accounts (agents once they go /online), customers have no phone linked;
groups and entries are made through the domain in the test's database (the owner's /service
screens are another flow)."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlmodel import col, select

from models.service.entries import create_entry, regenerate_token
from models.service.groups import add_member, create_group
from models.service.settings import update_settings
from models.service.tables import Agent, Conversation, MessageLink
from models.shops import owned_shop
from tests.harness import Harness, Person
from tests.support.domain import SERVICE, add_sub_account
from tests.support.flows import make_owner, onboard
from tests.support.people import HOLDER, HOLDER_PHONE, OWNER

AMY = Person(2102, "Amy", "en", "amy")
AMY_PHONE = "+8613900139111"
ANN = Person(5001, "Ann", "en")
BOB = Person(5002, "Bob", "en")
CAT = Person(5003, "Cat", "en")
DAN = Person(5004, "Dan", "en")
MEI = Person(5005, "Mei", "zh-Hans")


@dataclass
class Shop:
    shop_id: int
    groups: dict[str, int] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)


async def setup_shop(h: Harness, *, amy: bool = True) -> Shop:
    """Tea House with Hank (and Amy) as IM sub-accounts, neither online yet."""
    await make_owner(h)
    await onboard(h, HOLDER, HOLDER_PHONE)
    await add_sub_account(h, holder=HOLDER, phone=HOLDER_PHONE, role="Service", modules=SERVICE,
                          nickname="Hank CS", im=True)
    if amy:
        await onboard(h, AMY, AMY_PHONE)
        await add_sub_account(h, holder=AMY, phone=AMY_PHONE, role="Service", modules=SERVICE,
                              nickname="Amy CS", im=True)
    async with h.app.bot_data["deps"].sessions() as session:
        shop = await owned_shop(session, OWNER.id)
        assert shop is not None and shop.id is not None
        return Shop(shop.id)


async def agent_id(h: Harness, who: Person) -> int:
    async with h.app.bot_data["deps"].sessions() as session:
        found = (await session.exec(select(Agent).where(col(Agent.user_id) == who.id))).one()
        return found.id or 0


async def add_group(h: Harness, shop: Shop, name: str, members: dict[Person, int]) -> int:
    async with h.app.bot_data["deps"].sessions() as session:
        group = await create_group(session, shop_id=shop.shop_id, actor_id=OWNER.id, name=name,
                                   now=h.clock.now())
        await session.flush()
        for who, weight in members.items():
            found = (await session.exec(select(Agent).where(col(Agent.user_id) == who.id))).one()
            await add_member(session, shop_id=shop.shop_id, actor_id=OWNER.id,
                             group_id=group.id or 0, agent_id=found.id or 0, weight=weight,
                             now=h.clock.now())
        await session.commit()
        shop.groups[name] = group.id or 0
        return group.id or 0


async def add_entry(h: Harness, shop: Shop, name: str, group: str | None = None) -> str:
    async with h.app.bot_data["deps"].sessions() as session:
        _entry, token = await create_entry(
            session, shop_id=shop.shop_id, actor_id=OWNER.id, name=name,
            group_id=shop.groups[group] if group else None, now=h.clock.now())
        await session.commit()
    shop.tokens[name] = token
    return token


async def regenerate(h: Harness, shop: Shop, name: str) -> str:
    async with h.app.bot_data["deps"].sessions() as session:
        from models.service.entries import list_entries

        entry = next(e for e in await list_entries(session, shop_id=shop.shop_id)
                     if e.name == name)
        _e, token = await regenerate_token(session, shop_id=shop.shop_id, actor_id=OWNER.id,
                                       entry_id=entry.id or 0, now=h.clock.now())
        await session.commit()
    shop.tokens[name] = token
    return token


async def configure(h: Harness, shop: Shop, **changes: object) -> None:
    from handlers.service_relay import service_policy

    deps = h.app.bot_data["deps"]
    async with deps.sessions() as session:
        await update_settings(session, service_policy(deps), shop_id=shop.shop_id,
                              actor_id=OWNER.id, now=h.clock.now(), **changes)
        await session.commit()


async def conversation_of(h: Harness, who: Person) -> Conversation:
    async with h.app.bot_data["deps"].sessions() as session:
        return (await session.exec(
            select(Conversation).where(col(Conversation.customer_id) == who.id)
            .order_by(col(Conversation.id).desc()))).first()  # type: ignore[return-value]


async def links(h: Harness, conversation_id: int) -> list[MessageLink]:
    async with h.app.bot_data["deps"].sessions() as session:
        return list((await session.exec(
            select(MessageLink).where(col(MessageLink.conversation_id) == conversation_id)
            .order_by(col(MessageLink.id)))).all())


def copies(h: Harness, who: Person) -> list[dict[str, object]]:
    """The copies (copyMessage) in ``who``'s chat, oldest first."""
    return [m for m in h.api.chat(who.id) if "_copy_of" in m]


def texts(h: Harness, who: Person) -> list[str]:
    return [m.text for m in h.messages(who)]
