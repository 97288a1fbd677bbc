"""The people in the tests, each in their private chat with the bot, and their phones."""

from __future__ import annotations

from tests.harness import Person

OWNER = Person(1001, "Olivia", "en", "olivia")
HOLDER = Person(2002, "Hank", "en", "hank")
OTHER_OWNER = Person(3003, "Oscar", "en", "oscar")
STRANGER = Person(4004, "Sam", "en")
OWNER_PHONE = "+8613800138000"
HOLDER_PHONE = "+8613900139000"
OTHER_PHONE = "+8613700137000"
STRANGER_PHONE = "+8613600136000"
