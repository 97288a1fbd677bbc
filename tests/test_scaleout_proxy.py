"""The round-robin reverse proxy of the two-process tests (tests/support/proxy.py): turns,
the secret header and the answer passed through, failover on a refused connection or a 503,
a backend that took the request and died answered 502 (never sent twice), /healthz probes."""

from __future__ import annotations

import json

import httpx

from bot.localapi.http import Drop, HttpServer, Request, Response
from tests.fake_server import free_port
from tests.support.proxy import SECRET_HEADER, RoundRobinProxy


class Backend:
    def __init__(self, name: str) -> None:
        self.name = name
        self.seen: list[tuple[str, str]] = []
        self.status = 200
        self.healthy = True
        self.drop = False
        self.http = HttpServer(self.handle)

    async def handle(self, request: Request) -> Response:
        if request.path == "/healthz":
            return Response(200 if self.healthy else 503, b"", "text/plain")
        if self.drop:
            raise Drop
        self.seen.append((request.headers.get(SECRET_HEADER.lower(), ""), request.body.decode()))
        return Response(self.status, json.dumps({"by": self.name}).encode())


def update(n: int, user: int = 7) -> dict[str, object]:
    return {"update_id": n, "message": {"message_id": n, "from": {"id": user}, "text": "hi"}}


async def test_round_robin_failover_and_health() -> None:
    a, b = Backend("a"), Backend("b")
    await a.http.start()
    await b.http.start()
    dead = free_port()
    try:
        async with RoundRobinProxy([a.http.port, b.http.port]) as proxy, \
                httpx.AsyncClient() as client:

            async def post(n: int) -> httpx.Response:
                return await client.post(f"{proxy.url}/hook", json=update(n),
                                         headers={SECRET_HEADER: "s3cret"})

            answers = [await post(n) for n in range(1, 5)]
            assert [r.json()["by"] for r in answers] == ["a", "b", "a", "b"]
            assert proxy.landed(7) == [0, 1, 0, 1]
            assert {secret for secret, _ in a.seen + b.seen} == {"s3cret"}
            assert json.loads(a.seen[0][1])["update_id"] == 1
            # a 503 goes to the next backend, as proxy_next_upstream http_503
            a.status = 503
            answer = await post(5)
            assert answer.json()["by"] == "b" and proxy.log[-1].tried == (0, 1)
            a.status = 200
            # a backend that takes the request and dies: 502, not sent to the other
            b.drop = True
            before = len(a.seen)
            assert (await post(6)).status_code == 502 and len(a.seen) == before
            b.drop = False
            # /healthz probes take a backend out of the turn and back in
            b.healthy = False
            await proxy.probe()
            assert [(await post(n)).json()["by"] for n in (7, 8)] == ["a", "a"]
            b.healthy = True
            await proxy.probe()
            assert {(await post(n)).json()["by"] for n in (9, 10)} == {"a", "b"}
        # a refused connection goes to the next backend (whether or not a probe saw it first)
        async with RoundRobinProxy([dead, a.http.port]) as proxy, httpx.AsyncClient() as client:
            for n in (11, 12):
                answer = await client.post(f"{proxy.url}/hook", json=update(n))
                assert answer.json()["by"] == "a" and proxy.log[-1].backend == 1
            assert not proxy.backends[0].up
    finally:
        await a.http.stop()
        await b.http.stop()
