"""Alembic environment for the gateway's schema (see ``national_hub.db.alembic_env``)."""

from gateway.models import Base
from national_hub.db import alembic_env

alembic_env(Base.metadata, lock_id=424_243, version_table="gw_alembic_version")
