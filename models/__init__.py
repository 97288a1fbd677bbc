"""The domain: tables and the rules that guard them. Never imports telegram."""

import models.service  # noqa: F401  (registers the customer-service tables)
from models import outbox as outbox  # the notices owed by scheduled duties (SPEC §10)
from models import settings_store as settings_store  # the shared key/value table
from models import tables as tables  # registers every table on SQLModel.metadata
from models.lifecycle import tables as lifecycle_tables  # noqa: F401  (and the lifecycle's)
