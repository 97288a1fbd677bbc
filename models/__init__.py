"""The domain: tables and the rules that guard them. Never imports telegram."""

import models.service  # noqa: F401  (registers the customer-service tables)
from models import tables as tables  # registers every table on SQLModel.metadata
