"""The flow list: every flow literal is well formed, and each Application routes on its own."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from collections.abc import AsyncIterator
from types import ModuleType

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from telegram import Message

import handlers
from bot.app import build_application
from bot.config import Settings
from bot.localapi import LocalBotApi as FakeBotApi
from bot.localapi import LocalRequest as FakeRequest
from handlers import FLOWS
from handlers.context import Ctx, Deps
from handlers.flow import Command, Flow, Step
from handlers.router import Router, cb
from models.drafts import save_draft
from models.tables import Draft
from tests.harness import Harness, rows
from tests.support.flows import make_owner
from tests.support.people import HOLDER, OWNER

STALE = "This menu is no longer valid."
SAMPLE_ARG = {"int": "7", "key": "k"}


def handler_modules() -> list[ModuleType]:
    """Every module of the ``handlers`` package."""
    return [importlib.import_module(f"handlers.{m.name}")
            for m in pkgutil.iter_modules(handlers.__path__)]


def without_flow_literal(source: str) -> str:
    """A module's source without its ``FLOW = Flow(…)`` literal (it runs to the end)."""
    return source.split("\nFLOW = Flow(", 1)[0]


#: a move to a step named by literals or constants: ``ctx.start_flow(NAME, "step"``, ``ctx.goto(…``,
#: ``ctx.router.start/goto/ask/start_nested(ctx, "flow", "step"``, or a ``*STEP`` tuple
_MOVE = re.compile(
    r"(?:start_flow|goto|\.start|\.ask|start_nested)\(\s*(?:ctx,\s*)?"
    r"(?:(?P<flow>[A-Z_]+|\"[a-z_]+\")\s*,\s*(?P<step>[A-Z_]+|\"[a-z_]+\")|\*(?P<pair>[A-Z_]+))"
)


def _value(module: ModuleType, token: str) -> str:
    """A quoted literal, or the module constant it names."""
    return token.strip('"') if token.startswith('"') else str(getattr(module, token))


def moves(module: ModuleType) -> set[tuple[str, str]]:
    """The (flow, step) pairs the module's code moves a draft to, by literal names."""
    found = set()
    for match in _MOVE.finditer(inspect.getsource(module)):
        if match["pair"]:
            flow, step = getattr(module, match["pair"])
        else:
            flow, step = _value(module, match["flow"]), _value(module, match["step"])
        found.add((str(flow), str(step)))
    return found


def test_the_flow_list_builds_a_router() -> None:
    """Names, namespaces, commands and menu keys are unique; every shape is of known kinds."""
    router = Router(FLOWS)
    assert [f.name for f in FLOWS] == list(router.flows)
    assert len({c.name for c in router.commands}) == len(router.commands) >= 11
    assert set(router.namespaces) >= {"m", "na", "hc", "a", "r", "rn", "lg", "me", "fg", "lang"}


def test_every_button_shape_parses() -> None:
    router = Router(FLOWS)
    for flow in FLOWS:
        assert (flow.namespace is None) == (flow.on_button is None) == (not flow.buttons)
        for action, kinds in flow.buttons.items():
            args = [SAMPLE_ARG[kind] for kind in kinds]
            assert flow.namespace is not None
            data = cb(flow.namespace, action, *args)
            assert router.parse(data) == (flow.namespace, action, args), data
            assert router.parse(data + ":1") is None, data
            if kinds:
                assert router.parse(":".join([flow.namespace, action, *args[:-1]])) is None
    for key in ("newaccount", "accounts", "roles", "log"):
        assert router.parse(cb("m", key)) == ("m", key, [])


def test_every_step_is_declared_and_reached() -> None:
    """Every step the code moves a draft to is declared; every declared step is moved to."""
    router = Router(FLOWS)
    targets = set().union(*(moves(m) for m in handler_modules()))
    undeclared = {pair for pair in targets if router.step(*pair) is None}
    assert targets and undeclared == set()
    sources = "\n".join(without_flow_literal(inspect.getsource(m)) for m in handler_modules())
    for flow in FLOWS:
        for name, step in flow.steps.items():
            assert callable(step.ask), (flow.name, name)
            reached = (flow.name, name) in targets or f'"{name}"' in sources
            assert reached, f"{flow.name}.{name} is declared but nothing moves there"


def test_no_conversation_imports_another() -> None:
    """Conversations (the modules that declare a FLOW) meet only through the router."""
    conversations = {m.__name__ for m in handler_modules()
                     if isinstance(getattr(m, "FLOW", None), Flow)}
    for module in handler_modules():
        if module.__name__ not in conversations:
            continue
        imported = set(re.findall(r"^from (handlers\.[a-z_]+) import", inspect.getsource(module),
                                  re.MULTILINE))
        assert imported & conversations == set(), module.__name__


def test_no_module_level_registry() -> None:
    """No dict or list in handlers/ that code adds entries to at import time."""
    for module in handler_modules():
        source = inspect.getsource(module)
        assert not re.search(r"^[A-Za-z_.]+(\[[^\]]*\])?\.(append|update|setdefault)\(",
                             source, re.MULTILINE), module.__name__
        assert not re.search(r"^[A-Za-z_.]+\[[^\]]+\] = ", source, re.MULTILINE), module.__name__
        # nor an empty module-level dict or list waiting to be filled in
        assert not re.search(r"^[A-Za-z_]+: (dict|list)\[.*\] = (\{\}|\[\])$", source,
                             re.MULTILINE), module.__name__
        # nor a registration call at import time (``step(…)``, ``buttons(…)``)
        assert not re.search(r"^[A-Za-z_][A-Za-z_.]*\(", source, re.MULTILINE), module.__name__


def test_a_router_refuses_a_malformed_flow_list() -> None:
    async def nothing(_ctx: Ctx) -> None:
        return None

    async def buttons(_ctx: Ctx, _action: str, _args: list[str]) -> None:
        return None

    for bad in (
        (Flow(name="x"), Flow(name="x")),
        (Flow(name="x", namespace="a:b", buttons={"go": ()}, on_button=buttons),),
        (Flow(name="x", namespace="r", buttons={"go": ()}, on_button=buttons), Flow(
            name="y", namespace="r", buttons={"go": ()}, on_button=buttons)),
        (Flow(name="x", namespace="m", buttons={"go": ()}, on_button=buttons),),
        (Flow(name="x", namespace="x",
              buttons={"go": ("float",)},  # type: ignore[dict-item]
              on_button=buttons),),
        (Flow(name="x", buttons={"go": ()}, on_button=buttons),),
        (Flow(name="x", commands=(Command("a", nothing, who="everyone"),
                                  Command("a", nothing, who="owner"))),),
    ):
        with pytest.raises(ValueError):
            Router(bad)


# --- two applications in one process ----------------------------------------------------------


async def start_app(harness: Harness, settings: Settings, engine: AsyncEngine, api: FakeBotApi,
                    *extra: Flow) -> Harness:
    """Another Application in the same process, on the same database and Bot API, with the
    flows of ``handlers.FLOWS`` and ``extra``."""
    app = build_application(
        settings, engine=engine, clock=harness.clock, request=FakeRequest(api),
        get_updates_request=FakeRequest(api), rate_limit=False, flows=(*FLOWS, *extra),
    )
    await app.initialize()
    await app.start()
    return Harness(app, api, harness.clock)


async def put_draft(h: Harness, flow: str, step: str) -> None:
    """Olivia is at ``flow.step`` (as if an earlier update had put her there)."""
    async with h.app.bot_data["deps"].sessions() as session:
        await save_draft(session, OWNER.id, flow, step, {}, h.clock.now())
        await session.commit()


async def stop_app(h: Harness) -> None:
    await h.app.stop()
    await h.app.shutdown()


@pytest.fixture
async def second(
    harness: Harness, settings: Settings, engine: AsyncEngine, api: FakeBotApi
) -> AsyncIterator[Harness]:
    """A second Application in the same process, with a flow the first one does not have."""

    async def ask(ctx: Ctx) -> None:
        await ctx.reply("Probe: say something")

    async def on_text(ctx: Ctx, text: str) -> None:
        await ctx.end_flow()
        await ctx.reply(f"Probe heard {text}")

    async def on_button(ctx: Ctx, _action: str, _args: list[str]) -> None:
        await ctx.answer()
        await ctx.router.start(ctx, "probe", "listen")

    probe = Flow(name="probe", namespace="pr", buttons={"go": ()}, on_button=on_button,
                 steps={"listen": Step(ask=ask, on_text=on_text)})
    h = await start_app(harness, settings, engine, api, probe)
    yield h
    await stop_app(h)


def router_of(h: Harness) -> Router:
    deps = h.app.bot_data["deps"]
    assert isinstance(deps, Deps)
    return deps.router


async def test_two_applications_share_no_routing_state(harness: Harness, second: Harness) -> None:
    first_router, second_router = router_of(harness), router_of(second)
    assert first_router is not second_router
    assert first_router.flows is not second_router.flows
    assert "probe" in second_router.flows and "probe" not in first_router.flows
    assert second_router.parse("pr:go") == ("pr", "go", [])
    assert first_router.parse("pr:go") is None

    await make_owner(harness)
    await second.press(OWNER, "pr:go")  # the second application starts its flow…
    assert second.last(OWNER).text == "Probe: say something"
    answers = len(harness.answers())
    await harness.press(OWNER, "pr:go")  # …the first has no such button
    assert harness.answers()[answers:] == [STALE]
    await harness.text(OWNER, "hello")  # nor such a step: the draft is not its to route
    assert harness.last(OWNER).text != "Probe heard hello"
    await second.text(OWNER, "hello")
    assert second.last(OWNER).text == "Probe heard hello"


# --- Ctx.rollback -----------------------------------------------------------------------------


async def test_rollback_undoes_the_updates_writes_and_what_ctx_cached(
    harness: Harness, settings: Settings, engine: AsyncEngine, api: FakeBotApi
) -> None:
    """After ``ctx.rollback()`` the draft is the one in the database again and the user row is
    readable (a rollback expires every loaded object)."""

    async def ask(ctx: Ctx) -> None:
        await ctx.reply("Step one")

    async def on_text(ctx: Ctx, _text: str) -> None:
        await ctx.goto("rb", "two", {"typed": True})
        await ctx.rollback()
        draft = await ctx.load_draft()
        assert draft is not None
        await ctx.reply(f"at {draft.step} {draft.data}, {ctx.user.first_name}")

    flow = Flow(name="rb", steps={"one": Step(ask=ask, on_text=on_text),
                                  "two": Step(ask=ask, on_text=on_text)})
    h = await start_app(harness, settings, engine, api, flow)
    try:
        await make_owner(h)
        await put_draft(h, "rb", "one")
        await h.text(OWNER, "hello")
        assert h.last(OWNER).text == f"at one {{}}, {OWNER.first_name}"
        (draft,) = await rows(h, Draft)
        assert (draft.flow, draft.step, draft.data) == ("rb", "one", {})
    finally:
        await stop_app(h)


# --- a step may take any message ---------------------------------------------------------------


async def test_a_step_can_take_any_message(
    harness: Harness, settings: Settings, engine: AsyncEngine, api: FakeBotApi
) -> None:
    """``Step.on_message`` gets what has no handler of its own: a sticker, a contact, a text
    (the customer-service relay is such a step); a step without it still asks again."""

    async def ask(ctx: Ctx) -> None:
        await ctx.reply("Relay: send anything")

    async def relay(ctx: Ctx, message: Message) -> None:
        kind = "sticker" if message.sticker else "contact" if message.contact else "text"
        await ctx.reply(f"Relayed a {kind}")

    flow = Flow(name="relay", steps={"open": Step(ask=ask, on_message=relay)})
    h = await start_app(harness, settings, engine, api, flow)
    try:
        await make_owner(h)
        await put_draft(h, "relay", "open")
        await h.sticker(OWNER)
        assert h.last(OWNER).text == "Relayed a sticker"
        await h.contact(OWNER, "+8613900139000", user_id=HOLDER.id)
        assert h.last(OWNER).text == "Relayed a contact"
        await h.text(OWNER, "hello")
        assert h.last(OWNER).text == "Relayed a text"
        await h.command(OWNER, "/roles")  # a step without on_message: asked again
        await h.click(OWNER, "New role")
        shown = await h.sticker(OWNER)
        assert shown[0].text == "Please use the buttons below."
        assert "Create new role" in shown[-1].text
    finally:
        await stop_app(h)
