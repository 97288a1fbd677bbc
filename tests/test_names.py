"""Names people type — shop names, role names, nicknames — are cleaned by one rule.

Control characters become spaces (PostgreSQL refuses a NUL in text: a shop name with one used to
fail the update there), spaces fold, and a name with nothing visible in it is empty.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from models.accounts import clean_nickname
from models.errors import DomainError
from models.roles import clean_role_name
from models.shops import clean_shop_name
from models.tables import Shop
from tests.harness import Harness, rows
from tests.support.flows import make_owner
from tests.support.people import OWNER

CLEANERS: list[tuple[Callable[[str], str], str, int]] = [
    (clean_shop_name, "shop_name", 40),
    (clean_role_name, "role_name", 30),
    (clean_nickname, "nickname", 30),
]


@pytest.mark.parametrize(("clean", "what", "limit"), CLEANERS)
def test_every_name_is_cleaned_the_same_way(
    clean: Callable[[str], str], what: str, limit: int
) -> None:
    assert clean("  Tea\x00House \t\n") == "Tea House"
    assert clean("运营\u3000主管") == "运营 主管"
    assert clean("x" * limit) == "x" * limit
    for blank in ("", "   ", "\u200b", "\x00 \u200d"):
        with pytest.raises(DomainError) as empty:
            clean(blank)
        assert empty.value.key == f"{what}_empty"
    with pytest.raises(DomainError) as long:
        clean("x" * (limit + 1))
    assert (long.value.key, long.value.params) == (f"{what}_too_long",
                                                    {"max": limit, "length": limit + 1})


async def test_a_shop_name_with_a_nul_is_created_on_every_database(harness: Harness) -> None:
    await make_owner(harness, shop="Tea\x00House")
    assert [shop.name for shop in await rows(harness, Shop)] == ["Tea House"]
    assert "Tea House" in harness.last(OWNER).text
