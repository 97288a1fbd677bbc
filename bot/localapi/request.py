"""PTB's request layer answered in-process by a ``LocalBotApi`` (no sockets)."""

from __future__ import annotations

import json
from typing import Any

from telegram.request import BaseRequest, RequestData

from bot.localapi.core import LocalBotApi, Upload, envelope

#: Parameters whose values PTB sends JSON-encoded.
JSON_KEYS = {"reply_markup", "commands", "allowed_updates", "entities", "caption_entities",
             "scope", "link_preview_options"}


def decode(value: Any) -> Any:
    """A JSON-encoded object or list back to Python; anything else as it is."""
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


class LocalRequest(BaseRequest):
    """PTB's request layer, answered in-process by a ``LocalBotApi``."""

    def __init__(self, api: LocalBotApi) -> None:
        self.api = api

    async def initialize(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None

    @property
    def read_timeout(self) -> float:
        return 1.0

    async def do_request(  # type: ignore[override]
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = None,
        write_timeout: Any = None,
        connect_timeout: Any = None,
        pool_timeout: Any = None,
    ) -> tuple[int, bytes]:
        api_method = url.rsplit("/", 1)[-1]
        params: dict[str, Any] = json.loads(request_data.json_payload) if request_data else {}
        params = {k: decode(v) if k in JSON_KEYS else v for k, v in params.items()}
        for key in ("chat_id", "message_id", "user_id"):
            if isinstance(params.get(key), str) and params[key].lstrip("-").isdigit():
                params[key] = int(params[key])
        if request_data is not None:
            uploads = {name: _upload(part) for name, part in request_data.multipart_data.items()}
            for key, value in list(params.items()):  # media given as attach://<name>
                if isinstance(value, str) and value.startswith("attach://"):
                    params[key] = uploads.pop(value.removeprefix("attach://"), value)
            params.update(uploads)
        return envelope(self.api, api_method, params)


def _upload(part: Any) -> Upload:
    """PTB's ``(filename, content, mime type)`` field tuple as an ``Upload``."""
    filename, content, *rest = part
    data = content if isinstance(content, bytes) else content.read()
    return Upload(str(filename or "file"), str(rest[0] if rest else "application/octet-stream"),
                  bytes(data))
