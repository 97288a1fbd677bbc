"""What tests share besides fixtures (those live in ``tests/conftest.py``).

- ``people``: the people who talk to the bot in the tests, and their phones.
- ``db``: test databases: PostgreSQL on or off, scratch databases of one run's own, emptying
  one, the newest migration.
- ``app``: starting and stopping the real Application over the local Bot API.
- ``domain``: rows made through the domain, without the chat (roles, sub-accounts).
- ``flows``: whole conversations walked through the chat (onboarding, /newshop, /newaccount…).

The harness itself is ``tests/harness.py``; the bot as a process is ``tests/fake_server.py``.
"""
