"""refusals of unknown senders, counted per minute, source and reason

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "refusals",
        sa.Column(
            "minute", sa.BigInteger(), nullable=False, comment="Minutes since 1970-01-01 UTC"
        ),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("minute", "source", "reason", name=op.f("pk_refusals")),
    )


def downgrade() -> None:
    op.drop_table("refusals")
