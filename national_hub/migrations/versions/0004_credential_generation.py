"""credential generation and enabled flag: revocation that takes effect

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("credentials") as batch:
        batch.add_column(sa.Column("generation", sa.String(32), nullable=True))
        batch.add_column(
            sa.Column("enabled", sa.Boolean(), nullable=False, server_default=sa.true())
        )
    # Every existing credential gets a generation of its own: tokens issued before this
    # revision carry none and are refused, so their holders log in again.
    bind = op.get_bind()
    credentials = sa.table("credentials", sa.column("client_id"), sa.column("generation"))
    for (client_id,) in bind.execute(sa.select(credentials.c.client_id)).all():
        bind.execute(
            credentials.update()
            .where(credentials.c.client_id == client_id)
            .values(generation=secrets.token_hex(8))
        )
    with op.batch_alter_table("credentials") as batch:
        batch.alter_column("generation", existing_type=sa.String(32), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("credentials") as batch:
        batch.drop_column("enabled")
        batch.drop_column("generation")
