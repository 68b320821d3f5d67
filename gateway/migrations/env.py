"""Alembic environment for the gateway's schema (see ``common.db.alembic_env``)."""

from common.db import alembic_env
from gateway.models import Base

alembic_env(Base.metadata, lock_id=424_243, version_table="gw_alembic_version")
