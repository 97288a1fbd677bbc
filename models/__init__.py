"""The domain: tables and the rules that guard them. Never imports telegram."""

from models import tables as tables  # registers every table on SQLModel.metadata
