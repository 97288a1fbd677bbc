"""A round-robin reverse proxy in front of several webhook processes, and the local Bot API's
webhook delivery (what Telegram does once ``setWebhook`` is called): for the tests of SPEC §10.

``RoundRobinProxy`` listens on 127.0.0.1 and passes each request to the next backend in turn,
as nginx's ``upstream`` does: the path, the body and the headers that matter (the secret-token
header, the content type) go through, and the backend's status and body come back. Like nginx's
``proxy_next_upstream error http_503``, a backend that refuses the connection or answers 503 is
skipped and the request goes to the next one (a POST is never sent twice: once a backend has
taken the request and then dies, the proxy answers 502, as nginx does without
``non_idempotent``); a health probe of every backend's ``/healthz`` (``health_every`` seconds)
takes a backend out of the rotation and back. Every forwarded request is written to
``self.log`` (a ``Hop``: the update id, its user, the backend that answered, the status).

``WebhookDelivery`` is the Bot API side: updates queued on a ``LocalBotApiServer``
(``push_text``, ``push_press``…) are posted, in order, to the URL and with the secret token of
the latest ``setWebhook`` call, and posted again (bounded) until answered 200, as Telegram
retries a webhook that failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from dataclasses import dataclass, field
from typing import Any

import httpx

from bot.localapi import LocalBotApiServer
from bot.localapi.http import HttpServer, Request, Response

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
#: the statuses after which the request goes to the next backend (never sent twice otherwise)
NEXT_UPSTREAM = {502, 503, 504}


def user_of(update: dict[str, Any]) -> int | None:
    """The id of the person an update is from (message, edited message or button)."""
    for key in ("message", "edited_message", "callback_query"):
        part = update.get(key)
        if isinstance(part, dict) and isinstance(part.get("from"), dict):
            return int(part["from"]["id"])
    return None


@dataclass(frozen=True)
class Hop:
    """One request through the proxy: which backends were tried, which answered, how."""

    update_id: int | None
    user_id: int | None
    tried: tuple[int, ...]
    backend: int | None
    status: int


@dataclass
class Backend:
    port: int
    up: bool = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class RoundRobinProxy:
    """See the module's text. ``async with RoundRobinProxy([port_a, port_b]) as proxy``."""

    ports: list[int]
    health_every: float = 0.25
    backends: list[Backend] = field(init=False)
    log: list[Hop] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.backends = [Backend(port) for port in self.ports]
        self._turn = itertools.count()
        self._http = HttpServer(self._handle)
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(15.0, connect=2.0))
        self._probe: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._http.port}"

    async def __aenter__(self) -> RoundRobinProxy:
        await self._http.start()
        self._probe = asyncio.create_task(self._health_loop())
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe
        await self._http.stop()
        await self._client.aclose()

    def landed(self, user_id: int) -> list[int]:
        """The backends that answered ``user_id``'s updates, in order (from the proxy's log)."""
        return [hop.backend for hop in self.log
                if hop.user_id == user_id and hop.backend is not None]

    # --- health -----------------------------------------------------------------------------
    async def probe(self) -> None:
        """Ask every backend's /healthz once: 200 puts it in the rotation, anything else out."""
        for backend in self.backends:
            try:
                answer = await self._client.get(f"{backend.url}/healthz", timeout=2.0)
                backend.up = answer.status_code == 200
            except httpx.HTTPError:
                backend.up = False

    async def _health_loop(self) -> None:
        while True:
            await self.probe()
            await asyncio.sleep(self.health_every)

    # --- forwarding -------------------------------------------------------------------------
    def _order(self) -> list[int]:
        """The backends to try, starting with the next in turn; those marked down go last."""
        count = len(self.backends)
        start = next(self._turn) % count
        ring = [(start + n) % count for n in range(count)]
        return [i for i in ring if self.backends[i].up] + [i for i in ring
                                                          if not self.backends[i].up]

    async def _handle(self, request: Request) -> Response:
        if request.path == "/healthz":
            up = any(b.up for b in self.backends)
            return Response(200 if up else 503, b"ok\n" if up else b"no backend\n", "text/plain")
        update_id: int | None = None
        user_id: int | None = None
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            update = json.loads(request.body)
            update_id = int(update["update_id"])
            user_id = user_of(update)
        headers = {k: v for k, v in request.headers.items()
                   if k in ("content-type", SECRET_HEADER.lower())}
        target = request.path + (f"?{request.query}" if request.query else "")
        tried: list[int] = []
        for index in self._order():
            tried.append(index)
            backend = self.backends[index]
            try:
                answer = await self._client.request(request.verb, backend.url + target,
                                                    content=request.body, headers=headers)
            except httpx.ConnectError:  # nothing was sent: the next backend may take it
                backend.up = False
                continue
            except httpx.HTTPError:  # taken, then no answer: never sent to a second backend
                backend.up = False
                self.log.append(Hop(update_id, user_id, tuple(tried), None, 502))
                return Response(502, b"bad gateway\n", "text/plain")
            if answer.status_code in NEXT_UPSTREAM:
                continue
            self.log.append(Hop(update_id, user_id, tuple(tried), index, answer.status_code))
            return Response(answer.status_code, answer.content,
                            answer.headers.get("content-type", "text/plain"))
        self.log.append(Hop(update_id, user_id, tuple(tried), None, 502))
        return Response(502, b"no backend answered\n", "text/plain")


class WebhookDelivery:
    """Posts the updates queued on ``server`` to its webhook (see the module's text)."""

    def __init__(self, server: LocalBotApiServer, *, attempts: int = 20,
                 retry_after: float = 0.25) -> None:
        self.server = server
        self.attempts = attempts
        self.retry_after = retry_after
        #: update id -> the statuses of its delivery attempts (0: no connection)
        self.statuses: dict[int, list[int]] = {}
        self._client = httpx.AsyncClient(timeout=20.0)
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> WebhookDelivery:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._client.aclose()

    def webhook(self) -> tuple[str, str]:
        """The URL and secret token of the latest ``setWebhook``."""
        calls = self.server.api.methods("setWebhook")
        assert calls, "no setWebhook call yet"
        params = calls[-1].params
        return str(params["url"]), str(params.get("secret_token", ""))

    async def post(self, update: dict[str, Any]) -> int:
        """Post one update (queued or not) until it is answered 200 or the attempts run out;
        the last status."""
        url, secret = self.webhook()
        statuses = self.statuses.setdefault(int(update["update_id"]), [])
        for _ in range(self.attempts):
            try:
                answer = await self._client.post(url, json=update,
                                                 headers={SECRET_HEADER: secret})
                statuses.append(answer.status_code)
            except httpx.HTTPError:
                statuses.append(0)
            if statuses[-1] == 200:
                return 200
            await asyncio.sleep(self.retry_after)
        return statuses[-1]

    def queue(self, body: dict[str, Any]) -> dict[str, Any]:
        """``body`` as an update of the server (an id given, a message kept for copyMessage),
        not queued for delivery: to post by hand, e.g. many at once."""
        self.server.push_update(body)
        update = self.server.pending.pop()
        return update

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(AssertionError):
                await self.server.wait_for(lambda _calls: bool(self.server.pending), within=60)
            while self.server.pending:
                update = self.server.pending.pop(0)
                await self.post(update)
