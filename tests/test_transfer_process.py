"""The black box: ``subaccount-bot run`` as a process over HTTP long polling, a sub-account made
through the chat, then an owner transfer (主账号更换) asked, the process killed with ``kill -9``
while it is pending, and accepted by the next process."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.localapi import LocalBotApiServer as FakeBotApiServer
from tests.fake_server import running_bot
from tests.support.people import HOLDER, HOLDER_PHONE, OWNER, OWNER_PHONE
from tests.test_process_flow import finish, step, to_code


@pytest.fixture
async def server() -> AsyncIterator[FakeBotApiServer]:
    async with FakeBotApiServer() as running:
        yield running


async def test_a_transfer_accepted_over_http(tmp_path: Path, server: FakeBotApiServer) -> None:
    async with running_bot(tmp_path, server) as bot:
        code = await to_code(server)
        await finish(server, code)
        await step(server, OWNER, "Step 1 of 3", command="/transfer")
        await step(server, OWNER, "Step 2 of 3", press="Hank · ")
        await step(server, OWNER, "Step 3 of 3", press="Customer service")
        await step(server, OWNER, "That is not the shop's name", text="Tea")
        mark = server.mark()
        server.push_text(OWNER, "Tea House")
        await server.wait_message(OWNER, "waiting for Hank", since=mark, within=15)
        await server.wait_message(HOLDER, "asks you to become the shop's main account",
                                  since=mark, within=15)
        assert bot.rows("SELECT status FROM owner_transfer") == [("pending",)]
        assert await bot.stop(signal.SIGKILL) == -signal.SIGKILL
    async with running_bot(tmp_path, server) as again:
        mark = server.mark()
        await step(server, HOLDER, "You are now the main account of Tea House", press="Accept")
        await server.wait_message(OWNER, "Hank accepted", since=mark, within=15)
        assert again.rows("SELECT owner_id FROM shop") == [(HOLDER.id,)]
        assert sorted(again.rows("SELECT phone, kind FROM phone_binding")) == [
            (OWNER_PHONE, "sub"), (HOLDER_PHONE, "owner")]
        assert again.rows("SELECT holder_id, nickname, im_enabled FROM sub_account") == [
            (OWNER.id, "Olivia", 0)]
        assert again.rows("SELECT status FROM owner_transfer") == [("accepted",)]
        await step(server, OWNER, "Customer service", command="/me")
        await step(server, HOLDER, "Olivia · ", command="/accounts")
        assert await again.stop() == 0
    log = again.log()
    assert "Traceback" not in log
    assert code not in log and "13900139000" not in log and "13800138000" not in log
