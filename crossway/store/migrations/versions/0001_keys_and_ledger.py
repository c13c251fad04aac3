"""Virtual keys, the usage ledger, and gateway state.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("owner", sa.String(200)),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("prefix", sa.String(20), nullable=False),
        sa.Column("models", sa.JSON, nullable=False),
        sa.Column("vendors", sa.JSON, nullable=False),
        sa.Column("budget_daily", sa.Float),
        sa.Column("budget_monthly", sa.Float),
        sa.Column("budget_total", sa.Float),
        sa.Column("rpm", sa.BigInteger),
        sa.Column("tpm", sa.BigInteger),
        sa.Column("max_concurrency", sa.BigInteger),
        sa.Column("expires_at", sa.DateTime(timezone=True)),
        sa.Column("meta", sa.JSON, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("spend_total", sa.Float, nullable=False, server_default="0"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "usage",
        sa.Column("request_id", sa.String(40), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("key_id", sa.String(40)),
        sa.Column("endpoint", sa.String(40), nullable=False),
        sa.Column("model_requested", sa.String(200)),
        sa.Column("model", sa.String(200)),
        sa.Column("upstream_model", sa.String(200)),
        sa.Column("provider", sa.String(100)),
        sa.Column("vendor", sa.String(40)),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("error_type", sa.String(60)),
        sa.Column("stream", sa.Boolean, nullable=False),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("ttft_ms", sa.Float),
        sa.Column("prompt_tokens", sa.Integer, nullable=False),
        sa.Column("completion_tokens", sa.Integer, nullable=False),
        sa.Column("cached_tokens", sa.Integer, nullable=False),
        sa.Column("reasoning_tokens", sa.Integer, nullable=False),
        sa.Column("cost_usd", sa.Float),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("upstream_request_id", sa.String(200)),
    )
    op.create_index("ix_usage_created_at", "usage", ["created_at"])
    op.create_index("ix_usage_key_id", "usage", ["key_id"])
    op.create_index("ix_usage_model", "usage", ["model"])
    op.create_index("ix_usage_vendor", "usage", ["vendor"])
    # the master key's hash may already be there, written before the first migration
    if "crossway_meta" not in sa.inspect(op.get_bind()).get_table_names():
        op.create_table(
            "crossway_meta",
            sa.Column("key", sa.Text, primary_key=True),
            sa.Column("value", sa.LargeBinary, nullable=False),
        )


def downgrade() -> None:
    op.drop_table("usage")
    op.drop_table("api_keys")
