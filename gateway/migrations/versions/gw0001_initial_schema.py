"""initial schema

Revision ID: gw0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "gw0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "gw_api_keys",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("key_hash", sa.String(length=128), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("rate_limit_per_minute", sa.Integer(), nullable=False),
        sa.Column("daily_quota", sa.Integer(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gw_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_gw_api_keys_key_hash")),
    )
    op.create_table(
        "gw_dossiers",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("api_key_id", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=True),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("procedure", sa.String(length=16), nullable=False),
        sa.Column("province", sa.String(length=8), nullable=False),
        sa.Column("applicant", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("saving_vnd", sa.BigInteger(), nullable=False),
        sa.Column("hub_reported", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["api_key_id"], ["gw_api_keys.id"], name=op.f("fk_gw_dossiers_api_key_id_gw_api_keys")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gw_dossiers")),
        sa.UniqueConstraint("api_key_id", "idempotency_key", name="uq_gw_dossiers_key_idempotency"),
    )
    with op.batch_alter_table("gw_dossiers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_gw_dossiers_api_key_id"), ["api_key_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_gw_dossiers_procedure"), ["procedure"], unique=False)
        batch_op.create_index(batch_op.f("ix_gw_dossiers_province"), ["province"], unique=False)
        batch_op.create_index(batch_op.f("ix_gw_dossiers_status"), ["status"], unique=False)

    op.create_table(
        "gw_dossier_steps",
        sa.Column("dossier_id", sa.String(length=64), nullable=False),
        sa.Column("step_id", sa.String(length=32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("service", sa.String(length=64), nullable=False),
        sa.Column("method", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("outcome", sa.String(length=32), nullable=True),
        sa.Column("transaction_id", sa.String(length=64), nullable=True),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("error_detail", sa.Text(), nullable=True),
        sa.Column("output", sa.Text(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["dossier_id"],
            ["gw_dossiers.id"],
            name=op.f("fk_gw_dossier_steps_dossier_id_gw_dossiers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("dossier_id", "step_id", name=op.f("pk_gw_dossier_steps")),
    )


def downgrade() -> None:
    op.drop_table("gw_dossier_steps")
    with op.batch_alter_table("gw_dossiers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_gw_dossiers_status"))
        batch_op.drop_index(batch_op.f("ix_gw_dossiers_province"))
        batch_op.drop_index(batch_op.f("ix_gw_dossiers_procedure"))
        batch_op.drop_index(batch_op.f("ix_gw_dossiers_api_key_id"))

    op.drop_table("gw_dossiers")
    op.drop_table("gw_api_keys")
