"""The fake Bot API over HTTP, and the real bot as a separate process against it.

``FakeBotApiServer`` serves ``tests/fake_api.FakeBotApi`` (same state, same answers, same
``envelope()``) on ``127.0.0.1`` at a free port, inside the test's event loop:

- ``POST``/``GET /bot<token>/<method>`` with a form (what PTB sends), JSON or multipart body;
- ``getUpdates`` long-polls: the request is held until an update is queued or ``timeout``
  seconds pass; ``offset`` confirms (drops) earlier updates, like Telegram;
- ``api.fail_next(method, ApiError(...))`` answers with Telegram's error; any other exception
  queued there drops the connection without an answer (a network failure for the client);
- ``push_update()`` / ``push_command()`` / ``push_text()`` / ``push_contact()`` /
  ``push_press()`` queue what a person does; ``wait_for()`` / ``wait_call()`` wait (on an
  ``asyncio.Condition``, no sleeping) until the bot has made the calls a test expects.

``running_bot()`` starts ``python -m bot run`` with a real ``config.toml`` in a temporary
folder (SQLite file there, ``telegram.base_url`` = this server) and stops it with SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.parser
import email.policy
import itertools
import json
import os
import signal
import socket
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.fake_api import _JSON_KEYS, Call, FakeBotApi, _decode, envelope
from tests.harness import Person

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "123456:PROCESS-TEST-TOKEN"
_INT_KEYS = {"chat_id", "message_id", "user_id", "offset", "limit", "timeout", "from_chat_id",
             "reply_to_message_id", "cache_time"}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_listening(port: int, within: float = 10.0) -> None:
    """Wait until something accepts connections on 127.0.0.1:``port`` (bounded poll)."""
    deadline = time.monotonic() + within
    while True:
        try:
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError(f"nothing listens on 127.0.0.1:{port} after {within} s") from None
            await asyncio.sleep(0.05)
        else:
            writer.close()
            await writer.wait_closed()
            return


def _scalar(key: str, value: str) -> Any:
    """A form field back to the value PTB encoded (JSON for objects, strings stay strings)."""
    if key in _JSON_KEYS:
        return _decode(value)
    if key in _INT_KEYS and value.lstrip("-").isdigit():
        return int(value)
    if value in ("true", "false"):
        return value == "true"
    return value


def parse_body(content_type: str, body: bytes, query: str = "") -> dict[str, Any]:
    """The parameters of a Bot API request: query string plus form, JSON or multipart body."""
    params: dict[str, Any] = {k: _scalar(k, v) for k, v in parse_qsl(query, keep_blank_values=True)}
    kind = content_type.split(";", 1)[0].strip().lower()
    if not body:
        return params
    if kind == "application/json":
        loaded = json.loads(body)
        if isinstance(loaded, dict):
            params.update({k: _decode(v) if k in _JSON_KEYS else v for k, v in loaded.items()})
    elif kind == "multipart/form-data":
        head = f"Content-Type: {content_type}\r\n\r\n".encode()
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if not isinstance(name, str):
                continue
            filename = part.get_filename()
            payload = part.get_payload(decode=True)
            data = payload if isinstance(payload, bytes) else b""
            if filename:
                params[name] = {"filename": filename, "size": len(data)}
            else:
                params[name] = _scalar(name, data.decode("utf-8"))
    else:  # application/x-www-form-urlencoded, PTB's default
        for key, value in parse_qsl(body.decode("utf-8"), keep_blank_values=True):
            params[key] = _scalar(key, value)
    return params


class FakeBotApiServer:
    """``FakeBotApi`` over HTTP on 127.0.0.1, with long-polling ``getUpdates``."""

    def __init__(self, api: FakeBotApi | None = None, *, token: str = TOKEN) -> None:
        self.api = api or FakeBotApi()
        self.token = token
        self.port = 0
        self.pending: list[dict[str, Any]] = []  # queued, not yet confirmed by an offset
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1)
        self._callback_ids = itertools.count(1)
        self._changed = asyncio.Condition()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._closing = False

    # --- lifecycle ---------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        """What goes into ``telegram.base_url``."""
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> FakeBotApiServer:
        self._server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def stop(self) -> None:
        """Release held long polls, close every connection and the listening socket."""
        self._closing = True
        async with self._changed:
            self._changed.notify_all()
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

    async def __aenter__(self) -> FakeBotApiServer:
        return await self.start()

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    # --- what a person does ------------------------------------------------------------------
    def push_update(self, update: Mapping[str, Any]) -> int:
        """Queue an update for ``getUpdates`` (an ``update_id`` is added if missing)."""
        payload = dict(update)
        payload.setdefault("update_id", next(self._update_ids))
        self.pending.append(payload)
        self._wake()
        return int(payload["update_id"])

    def message(self, who: Person, **extra: Any) -> dict[str, Any]:
        """A private-chat message from ``who`` (an update body, not yet queued)."""
        return {"message": {
            "message_id": next(self._message_ids), "date": int(time.time()),
            "chat": {"id": who.id, "type": "private", "first_name": who.first_name},
            "from": who.as_dict(), **extra,
        }}

    def push_text(self, who: Person, text: str) -> int:
        return self.push_update(self.message(who, text=text))

    def push_command(self, who: Person, command: str) -> int:
        name = command.split()[0]
        return self.push_update(self.message(
            who, text=command, entities=[{"type": "bot_command", "offset": 0, "length": len(name)}]
        ))

    def push_contact(self, who: Person, phone: str, *, user_id: int | None = None) -> int:
        return self.push_update(self.message(who, contact={
            "phone_number": phone, "first_name": who.first_name,
            "user_id": who.id if user_id is None else user_id,
        }))

    def push_press(self, who: Person, data: str) -> int:
        """``who`` presses the button with callback ``data`` on the latest message showing it."""
        for message in reversed(self.api.chat(who.id)):
            rows = (message.get("reply_markup") or {}).get("inline_keyboard") or []
            if any(button.get("callback_data") == data for row in rows for button in row):
                public = {k: v for k, v in message.items() if not k.startswith("_")}
                return self.push_update({"callback_query": {
                    "id": str(next(self._callback_ids)), "from": who.as_dict(),
                    "chat_instance": str(who.id), "data": data, "message": public,
                }})
        raise AssertionError(f"no message in {who.first_name}'s chat has a button {data!r}")

    # --- waiting for the bot -----------------------------------------------------------------
    def mark(self) -> int:
        """The number of calls so far (pass as ``since`` to wait for later calls only)."""
        return len(self.api.calls)

    async def wait_for(self, predicate: Callable[[list[Call]], Any], within: float = 10.0) -> Any:
        """Wait until ``predicate(calls)`` is truthy and return its value."""
        found: Any = None

        def ready() -> bool:
            nonlocal found
            found = predicate(self.api.calls)
            return bool(found)

        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(ready), within)
            except TimeoutError:
                seen = ", ".join(c.method for c in self.api.calls[-15:])
                raise AssertionError(
                    f"the bot did not make the expected call within {within} s "
                    f"(last calls: {seen or 'none'})"
                ) from None
        return found

    async def wait_call(
        self,
        method: str,
        where: Callable[[Call], bool] | None = None,
        *,
        since: int = 0,
        within: float = 10.0,
    ) -> Call:
        """The first call of ``method`` (after index ``since``) that satisfies ``where``."""

        def first(calls: list[Call]) -> Call | None:
            for call in calls[since:]:
                if call.method == method and (where is None or where(call)):
                    return call
            return None

        result: Call = await self.wait_for(first, within)
        return result

    async def wait_message(
        self, who: Person, contains: str, *, since: int = 0, within: float = 10.0
    ) -> Call:
        """The bot's first message (sent or edited) to ``who`` after ``since`` with ``contains``."""

        def match(call: Call) -> bool:
            result = call.result if isinstance(call.result, dict) else {}
            return (call.method in ("sendMessage", "editMessageText")
                    and result.get("chat", {}).get("id") == who.id
                    and contains in str(result.get("text", "")))

        return await self.wait_for(
            lambda calls: next((c for c in calls[since:] if match(c)), None), within
        )

    # --- HTTP --------------------------------------------------------------------------------
    def _wake(self) -> None:
        """Tell waiters that calls or updates changed (scheduled: callers may be sync)."""

        async def notify() -> None:
            async with self._changed:
                self._changed.notify_all()

        task = asyncio.get_running_loop().create_task(notify())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _confirmed(self, offset: int) -> list[dict[str, Any]]:
        if offset > 0:
            self.pending = [u for u in self.pending if u["update_id"] >= offset]
        return self.pending

    async def _get_updates(self, params: dict[str, Any]) -> tuple[int, bytes]:
        status, body = envelope(self.api, "getUpdates", params)  # records the call, or fails
        call = self.api.calls[-1]
        self._wake()
        if status != HTTPStatus.OK:
            return status, body
        offset = int(params.get("offset") or 0)
        limit = int(params.get("limit") or 100)
        timeout = float(params.get("timeout") or 0)
        async with self._changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: self._closing or bool(self._confirmed(offset))),
                    timeout,
                )
        updates = list(self._confirmed(offset)[:limit])
        call.result = updates
        return HTTPStatus.OK, json.dumps({"ok": True, "result": updates}).encode()

    async def _dispatch(self, verb: str, target: str, headers: dict[str, str],
                        body: bytes) -> tuple[int, bytes]:
        url = urlsplit(target)
        parts = url.path.strip("/").split("/")
        if verb not in ("GET", "POST") or len(parts) != 2 or not parts[0].startswith("bot"):
            return 404, json.dumps({"ok": False, "error_code": 404,
                                    "description": "Not Found"}).encode()
        if parts[0][3:] != self.token:
            return 401, json.dumps({"ok": False, "error_code": 401,
                                    "description": "Unauthorized"}).encode()
        method = parts[1]
        try:
            params = parse_body(headers.get("content-type", ""), body, url.query)
        except (ValueError, UnicodeDecodeError) as exc:
            return 400, json.dumps({"ok": False, "error_code": 400,
                                    "description": f"Bad Request: {exc}"}).encode()
        try:
            if method == "getUpdates":
                return await self._get_updates(params)
            return envelope(self.api, method, params)
        except Exception as exc:  # a transport failure queued with api.fail_next()
            raise _Drop from exc
        finally:
            self._wake()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)  # type: ignore[arg-type]
        self._writers.add(writer)
        try:
            while not self._closing:
                line = await reader.readline()
                if not line.strip():
                    break
                verb, target, version = line.decode("latin-1").split()
                headers: dict[str, str] = {}
                while (header := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    key, _, value = header.decode("latin-1").partition(":")
                    headers[key.strip().lower()] = value.strip()
                if headers.get("transfer-encoding", "").lower() == "chunked":
                    body = await _read_chunked(reader)
                else:
                    body = await reader.readexactly(int(headers.get("content-length") or 0))
                status, payload = await self._dispatch(verb, target, headers, body)
                keep = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
                head = (
                    f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
                    "Content-Type: application/json\r\n"
                    f"Content-Length: {len(payload)}\r\n"
                    f"Connection: {'keep-alive' if keep else 'close'}\r\n\r\n"
                )
                writer.write(head.encode("latin-1") + payload)
                await writer.drain()
                if not keep:
                    break
        except (ConnectionError, asyncio.IncompleteReadError, ValueError, _Drop):
            pass  # _Drop: close without answering, as a network failure looks to the client
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
            if task is not None:
                self._tasks.discard(task)  # type: ignore[arg-type]


class _Drop(Exception):
    """Close the connection without an answer."""


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    chunks = []
    while True:
        size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
        if size == 0:
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass
            return b"".join(chunks)
        chunks.append(await reader.readexactly(size))
        await reader.readexactly(2)


# --- the bot as a process ---------------------------------------------------------------------


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def to_toml(data: Mapping[str, Any], prefix: str = "") -> str:
    """A small TOML writer for configs: scalars, lists and nested tables."""
    lines = [f"{k} = {_toml_value(v)}" for k, v in data.items() if not isinstance(v, Mapping)]
    out = "\n".join(lines) + ("\n" if lines else "")
    for key, value in data.items():
        if isinstance(value, Mapping):
            name = f"{prefix}.{key}" if prefix else key
            out += f"\n[{name}]\n" + to_toml(value, name)
    return out


def merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``extra``, nested tables merged."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def bot_env(**extra: str) -> dict[str, str]:
    """The environment for a bot process: this repo importable, no inherited bot settings."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("BOT_TOKEN", "DATABASE_URL", "LOG_LEVEL", "TEST_DATABASE_URL")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


@dataclass
class BotProcess:
    """``python -m bot run`` in ``workdir``, logging to ``log_path``."""

    process: asyncio.subprocess.Process
    workdir: Path
    config_path: Path
    db_path: Path
    log_path: Path
    started_at: float
    returncode: int | None = field(default=None)

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Query the bot's SQLite file (read-only, from this process)."""
        uri = f"file:{self.db_path}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=10)) as conn:
            return list(conn.execute(sql, params).fetchall())

    async def stop(self, sig: int = signal.SIGTERM, within: float = 10.0) -> int:
        """Send ``sig`` and wait for the exit code (killed, and an error, after ``within`` s)."""
        if self.process.returncode is None:
            self.process.send_signal(sig)
        try:
            self.returncode = await asyncio.wait_for(self.process.wait(), within)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
            raise AssertionError(f"the bot did not stop within {within} s:\n{self.log()}") from None
        return self.returncode


@contextlib.asynccontextmanager
async def running_bot(
    tmp_path: Path,
    server: FakeBotApiServer,
    config_overrides: Mapping[str, Any] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    wait_ready: bool = True,
) -> AsyncIterator[BotProcess]:
    """The bot as a process against ``server``, with its SQLite file in ``tmp_path``.

    The config is ``token`` + ``base_url`` (the server) + a small poll timeout + DEBUG logs,
    merged with ``config_overrides``. With ``wait_ready`` the context opens once the bot has
    asked for updates (polling) or set its webhook (webhook mode). On exit the process is
    stopped with SIGTERM (killed if it hangs).
    """
    workdir = tmp_path / "bot"
    workdir.mkdir(parents=True, exist_ok=True)
    db_path = workdir / "bot.db"
    config: dict[str, Any] = {
        "telegram": {"token": server.token, "base_url": server.base_url, "poll_timeout": 5},
        "database": {"url": f"sqlite+aiosqlite:///{db_path}"},
        "logging": {"level": "DEBUG"},
    }
    config = merge(config, config_overrides or {})
    config_path = workdir / "config.toml"
    config_path.write_text(to_toml(config), encoding="utf-8")
    log_path = workdir / "bot.log"
    since = server.mark()
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        started = time.monotonic()
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "run", "--config", str(config_path),
            cwd=workdir, env=bot_env(**(env or {})), stdin=asyncio.subprocess.DEVNULL,
            stdout=log_fd, stderr=log_fd,
        )
    finally:
        os.close(log_fd)
    bot = BotProcess(process, workdir, config_path, db_path, log_path, started)
    try:
        if wait_ready:
            ready = "setWebhook" if config["telegram"].get("mode") == "webhook" else "getUpdates"
            try:
                await server.wait_call(ready, since=since, within=30)
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n--- bot log ---\n{bot.log()}") from None
        yield bot
    finally:
        if process.returncode is None:
            with contextlib.suppress(AssertionError):
                await bot.stop()
