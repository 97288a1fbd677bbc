"""Customer service (客服分流, SPEC §8): agents, groups, entries, routing, service levels.

Every rule takes the caller's ``AsyncSession`` and an injected ``now``, makes one decision in
the caller's transaction and returns plain results (who to tell, where a conversation went);
it never sends anything, never commits and never rolls back. See docs/service.md.
"""

from models.service import tables as tables  # registers the tables on SQLModel.metadata
