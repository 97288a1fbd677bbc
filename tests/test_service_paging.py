"""/service's entries and groups lists a page at a time, through the Application: more than
one page, Next / Previous editing the same menu, a card's Back to the page it came from, and a
stale page button (the list shrank since) answered with the last page (SQLite, and PostgreSQL
with TEST_DATABASE_URL)."""

from __future__ import annotations

from models.service.results import LIST_PAGE_SIZE
from tests.harness import Harness
from tests.service_chat_world import add_entry, add_group, setup_shop
from tests.support.people import OWNER

#: more than two pages
COUNT = 2 * LIST_PAGE_SIZE + 3


def named(n: int) -> str:
    return f"Item {n:02d}"


async def test_entries_are_paged(harness: Harness) -> None:
    h = harness
    shop = await setup_shop(h, amy=False)
    for n in range(1, COUNT + 1):
        await add_entry(h, shop, named(n))
    await h.command(OWNER, "/service")
    await h.click(OWNER, "Entries")
    first = h.last(OWNER)
    assert "Page 1 of 3" in first.text
    assert "Item 01" in first.labels and "Item 10" in first.labels
    assert "Item 11" not in first.labels and "Item 11" not in first.text
    assert "Next ▶️" in first.labels and "◀️ Previous" not in first.labels
    assert "➕ New entry" in first.labels  # still offered on every page
    await h.click(OWNER, "Next ▶️")
    second = h.last(OWNER)
    assert second.message_id == first.message_id  # the same menu, edited
    assert "Page 2 of 3" in second.text and "11. Item 11" in second.text
    assert "Item 01" not in second.labels
    assert "◀️ Previous" in second.labels and "Next ▶️" in second.labels
    await h.click(OWNER, "Next ▶️")
    third = h.last(OWNER)
    assert "Page 3 of 3" in third.text and "23. Item 23" in third.text
    assert "Next ▶️" not in third.labels
    # an entry's card goes back to the page it is on
    await h.click(OWNER, "Item 22")
    assert "Item 22" in h.last(OWNER).text
    await h.click(OWNER, "Back")
    assert "Page 3 of 3" in h.last(OWNER).text
    await h.click(OWNER, "◀️ Previous")
    assert "Page 2 of 3" in h.last(OWNER).text


async def test_a_stale_entries_page_shows_the_last_page(harness: Harness) -> None:
    h = harness
    shop = await setup_shop(h, amy=False)
    for n in range(1, LIST_PAGE_SIZE + 2):
        await add_entry(h, shop, named(n))
    await h.command(OWNER, "/service")
    await h.click(OWNER, "Entries")
    answered = len(h.api.methods("answerCallbackQuery"))
    await h.press(OWNER, "sv:ep:9")  # a page that no longer exists (or never did)
    shown = h.last(OWNER)
    assert "Page 2 of 2" in shown.text and "11. Item 11" in shown.text
    assert len(h.api.methods("answerCallbackQuery")) == answered + 1  # the button answered


async def test_one_page_has_no_pager(harness: Harness) -> None:
    h = harness
    shop = await setup_shop(h, amy=False)
    await add_entry(h, shop, "Website")
    await add_group(h, shop, "Pre-sales", {})
    await h.command(OWNER, "/service")
    await h.click(OWNER, "Entries")
    assert "Page" not in h.last(OWNER).text
    assert "Next ▶️" not in h.last(OWNER).labels
    await h.command(OWNER, "/service")
    await h.click(OWNER, "Groups")
    assert "Page" not in h.last(OWNER).text and "Pre-sales" in h.last(OWNER).labels


async def test_groups_are_paged(harness: Harness) -> None:
    h = harness
    shop = await setup_shop(h, amy=False)
    for n in range(1, COUNT + 1):
        await add_group(h, shop, named(n), {})
    await h.command(OWNER, "/service")
    await h.click(OWNER, "Groups")
    first = h.last(OWNER)
    assert "Page 1 of 3" in first.text and "Item 10" in first.labels
    assert "Item 11" not in first.labels
    await h.click(OWNER, "Next ▶️")
    second = h.last(OWNER)
    assert second.message_id == first.message_id
    assert "Page 2 of 3" in second.text and "Item 12" in second.labels
    assert "12. Item 12 · 0 members" in second.text
    await h.click(OWNER, "Item 12")
    assert "Item 12" in h.last(OWNER).text
    await h.click(OWNER, "Back")
    assert "Page 2 of 3" in h.last(OWNER).text
    await h.press(OWNER, "sg:p:99")  # stale: past the end
    assert "Page 3 of 3" in h.last(OWNER).text


async def test_paging_in_chinese(harness: Harness) -> None:
    h = harness
    shop = await setup_shop(h, amy=False)
    for n in range(1, LIST_PAGE_SIZE + 2):
        await add_entry(h, shop, named(n))
    await h.command(OWNER, "/language")
    await h.click(OWNER, "简体中文")
    await h.command(OWNER, "/service")
    await h.press(OWNER, "sv:el")
    shown = h.last(OWNER)
    assert "第1/2页" in shown.text and "下一页 ▶️" in shown.labels
