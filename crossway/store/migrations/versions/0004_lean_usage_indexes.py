"""The ledger keeps only the indexes its reads need: time, key and request id.

`model` and `vendor` take a handful of values each, so a filter on one of them reads a large
part of the table whatever the index; the reports filter by time range first. Each index
costs every ledger row written an insertion and its WAL (measured in docs/performance.md).

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_usage_model", table_name="usage")
    op.drop_index("ix_usage_vendor", table_name="usage")


def downgrade() -> None:
    op.create_index("ix_usage_model", "usage", ["model"])
    op.create_index("ix_usage_vendor", "usage", ["vendor"])
