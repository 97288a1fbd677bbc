"""A small HTTP/1.1 server on asyncio streams, for the local Bot API and the playground page.

One ``handler(request)`` per server answers every request with a ``Response`` (a body) or a
``Stream`` (chunks written as they come: server-sent events); raising ``Drop`` closes the
connection without an answer (what a network failure looks like to the client). Connections are
kept alive for HTTP/1.1 clients. ``stop()`` closes the listening socket and every connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

#: The largest request body accepted (uploads of QR codes and exports fit easily).
MAX_BODY = 20 * 1024 * 1024


@dataclass(frozen=True)
class Request:
    verb: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Stream:
    """A response written chunk by chunk until ``chunks`` ends (the connection then closes)."""

    chunks: AsyncIterator[bytes]
    content_type: str = "text/event-stream"
    headers: tuple[tuple[str, str], ...] = field(default=(("Cache-Control", "no-store"),))


class Drop(Exception):
    """Close the connection without an answer."""


def json_response(status: int, payload: Any) -> Response:
    return Response(status, json.dumps(payload, ensure_ascii=False).encode("utf-8"),
                    "application/json; charset=utf-8")


Handler = Callable[[Request], Awaitable[Response | Stream]]


class HttpServer:
    """``handler`` served on ``host``:``port`` (port 0: a free one, see ``port`` after start)."""

    def __init__(self, handler: Handler, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.handler = handler
        self.host = host
        self.port = port
        self.closing = False
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._connection, self.host, self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Close the listening socket and every connection; wait (bounded) for handlers."""
        self.closing = True
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
        if self._server is not None:
            await self._server.wait_closed()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        self._writers.add(writer)
        try:
            while not self.closing:
                request, keep = await _read_request(reader)
                if request is None:
                    break
                answer = await self.handler(request)
                if isinstance(answer, Stream):
                    await _write_stream(writer, answer)
                    break
                _write_head(writer, answer.status, answer.content_type, answer.headers,
                            length=len(answer.body), keep=keep)
                writer.write(answer.body)
                await writer.drain()
                if not keep:
                    break
        except (ConnectionError, asyncio.IncompleteReadError, ValueError, Drop):
            pass  # Drop: close without answering, as a network failure looks to the client
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
            if task is not None:
                self._tasks.discard(task)


async def _read_request(reader: asyncio.StreamReader) -> tuple[Request | None, bool]:
    """The next request on the connection (``None`` at its end) and whether to keep it open."""
    line = await reader.readline()
    if not line.strip():
        return None, False
    verb, target, version = line.decode("latin-1").split()
    headers: dict[str, str] = {}
    while (header := await reader.readline()) not in (b"\r\n", b"\n", b""):
        key, _, value = header.decode("latin-1").partition(":")
        headers[key.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = await _read_chunked(reader)
    else:
        length = int(headers.get("content-length") or 0)
        if length > MAX_BODY:
            raise ValueError("request body too large")
        body = await reader.readexactly(length)
    url = urlsplit(target)
    keep = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
    return Request(verb.upper(), url.path, url.query, headers, body), keep


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while True:
        size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
        if size == 0:
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass
            return b"".join(chunks)
        total += size
        if total > MAX_BODY:
            raise ValueError("request body too large")
        chunks.append(await reader.readexactly(size))
        await reader.readexactly(2)


def _write_head(writer: asyncio.StreamWriter, status: int, content_type: str,
                headers: tuple[tuple[str, str], ...], *, length: int | None, keep: bool) -> None:
    lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}", f"Content-Type: {content_type}"]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    lines += [f"{key}: {value}" for key, value in headers]
    lines.append(f"Connection: {'keep-alive' if keep else 'close'}")
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))


async def _write_stream(writer: asyncio.StreamWriter, stream: Stream) -> None:
    _write_head(writer, 200, stream.content_type, stream.headers, length=None, keep=False)
    await writer.drain()
    try:
        async for chunk in stream.chunks:
            writer.write(chunk)
            await writer.drain()
    finally:
        close = getattr(stream.chunks, "aclose", None)
        if close is not None:
            await close()
