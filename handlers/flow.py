"""How a conversation is declared: one ``Flow`` literal per conversation module.

A flow names its draft value, its callback namespace and the shapes of its buttons, its steps
(each step: how to ask for what it expects, and what to do with a text, a shared contact or
any other message), its slash commands, its clean-up, where a flow nested in it returns, the
``/start`` deep links it claims and what ``/start`` shows a user it concerns. ``handlers``
lists the flows; ``handlers.router.Router`` is built from that list. Nothing here is global:
these are declarations, read by the router of each application.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from telegram import Contact, Message

if TYPE_CHECKING:
    from handlers.context import Ctx

#: (re)ask for what a step expects; also any action that takes only the update
Prompt = Callable[["Ctx"], Awaitable[None]]
Handler = Prompt
TextHandler = Callable[["Ctx", str], Awaitable[None]]
ContactHandler = Callable[["Ctx", Contact], Awaitable[None]]
#: any other message of the person (photo, sticker, voice, document…)
MessageHandler = Callable[["Ctx", Message], Awaitable[None]]
#: a button of the flow's namespace: (ctx, action, its arguments as parsed strings)
ButtonHandler = Callable[["Ctx", str, list[str]], Awaitable[None]]
#: a flow nested in this one has ended: (ctx, what it made or None, the data kept for us)
ReturnHandler = Callable[["Ctx", "int | None", dict[str, object]], Awaitable[None]]
#: ``/start <payload>``: ``True`` if this flow took the payload
DeepLinkHandler = Callable[["Ctx", str], Awaitable[bool]]
#: what ``/start`` shows: ``True`` if this flow's view applies to the user (and was shown)
HomeView = Callable[["Ctx"], Awaitable[bool]]
#: what the user is doing in this flow, in a few words (``None``: nothing to lose yet)
Describe = Callable[["Ctx"], Awaitable[str | None]]

#: who a command is for (the command menu lists every command; /help only the ones that
#: apply): ``everyone``; ``owner`` (the main account of a shop); ``staff`` (a sub-account of
#: one); ``unlinked`` (a linked phone, but neither of the two)
Audience = Literal["everyone", "owner", "staff", "unlinked"]
#: a callback argument: ``int`` (ASCII digits up to 2^31−1) or ``key`` ([A-Za-z0-9_-]{1,40})
ArgKind = Literal["int", "key"]


@dataclass(frozen=True)
class Step:
    """One named state of a conversation."""

    #: (re)ask for what this step expects
    ask: Prompt
    on_text: TextHandler | None = None
    on_contact: ContactHandler | None = None
    #: any other message (photo, sticker, voice…); also texts and contacts the step has no
    #: handler of its own for
    on_message: MessageHandler | None = None


@dataclass(frozen=True)
class Command:
    """A slash command a flow answers (MESSAGE updates only: an edit never runs one)."""

    name: str
    run: Handler
    #: who it is for: one audience, or several (customer service: owners and staff)
    who: Audience | tuple[Audience, ...]
    #: also a button of the owner's home menu (label ``home.menu_<key>``, data ``m:<key>``)
    menu_key: str | None = None

    def is_for(self, who: Collection[str]) -> bool:
        """Whether someone who is ``who`` (``handlers.menus.audience``) sees this command."""
        audiences = (self.who,) if isinstance(self.who, str) else self.who
        return any(a in who for a in audiences)


@dataclass(frozen=True)
class Flow:
    """One conversation: its whole state machine."""

    #: the draft's ``flow`` value
    name: str
    #: callback data ``ns:action:arg…``
    namespace: str | None = None
    #: action → argument kinds
    buttons: Mapping[str, tuple[ArgKind, ...]] = field(default_factory=dict)
    on_button: ButtonHandler | None = None
    steps: Mapping[str, Step] = field(default_factory=dict)
    commands: tuple[Command, ...] = ()
    #: clean-up when the flow is cancelled or replaced by another command
    on_cancel: Prompt | None = None
    #: where a nested flow started from this one returns
    on_return: ReturnHandler | None = None
    #: something this flow's draft may rely on was changed by another flow (a role was
    #: deleted): check the draft, and rewind it if needed
    on_change: Prompt | None = None
    #: claims ``/start <payload>``
    deep_link: DeepLinkHandler | None = None
    #: what /start shows this user, if it applies
    home: HomeView | None = None
    #: what the user has entered so far, in a few words (HTML), or ``None`` when nothing: a
    #: command or an old menu button pressed meanwhile first asks "Discard / Continue", and
    #: /start offers "▶️ Continue: …"
    describe: Describe | None = None
