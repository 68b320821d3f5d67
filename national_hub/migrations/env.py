"""Alembic environment for the hub's schema (see ``common.db.alembic_env``)."""

from common.db import alembic_env
from national_hub.models import Base

#: Any fixed number: every hub replica upgrading at once takes the same lock.
alembic_env(Base.metadata, lock_id=424_242)
