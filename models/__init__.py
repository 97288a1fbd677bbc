"""The domain: tables and the rules that guard them. Never imports telegram."""

from models import settings_store as settings_store  # the shared key/value table
from models import tables as tables  # registers every table on SQLModel.metadata
