"""credential generation and enabled flag (revocation that takes effect); the ledger's
dossiers indexed (a completion is checked against its exchanges)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
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
    op.create_index(
        "ix_ledger_dossier",
        "ledger",
        ["dossier"],
        sqlite_where=sa.text("dossier IS NOT NULL"),
        postgresql_where=sa.text("dossier IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_ledger_dossier", table_name="ledger")
    with op.batch_alter_table("credentials") as batch:
        batch.drop_column("enabled")
        batch.drop_column("generation")
