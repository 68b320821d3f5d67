"""ledger hash recipe version, per chain

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25

Every chain written so far used the first recipe: the column's default says so, and
rewrites no ledger row (the version is kept once per chain, not per row).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("ledger_chains", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("hash_version", sa.Integer(), server_default=sa.text("1"), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("ledger_chains", schema=None) as batch_op:
        batch_op.drop_column("hash_version")
