"""Postgres: the ledger keeps its primary key and a BRIN index on time, no B-trees beside it.

Rows arrive in time order, so a BRIN index (a summary per range of pages) finds a time range
for almost nothing per row written, where the time and key B-trees cost a third of Postgres'
CPU per ledger row (measured in docs/performance.md). A report filtered by key reads its
time range and filters it; an operator who reports by key over long ranges can add
`CREATE INDEX ON usage (key_id, created_at)`, at about 1 µs of Postgres CPU per row.
SQLite keeps its B-trees: it has no BRIN, and it writes in the gateway's own process.

Revision ID: 0005
Revises: 0004
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index("ix_usage_created_at", table_name="usage")
    op.drop_index("ix_usage_key_id", table_name="usage")
    # autosummarize: each range of pages is summarized once it fills (by an autovacuum work
    # item), not at the next VACUUM: until then a query reads the range whatever it holds
    op.create_index(
        "ix_usage_created_at_brin",
        "usage",
        ["created_at"],
        postgresql_using="brin",
        postgresql_with={"autosummarize": "on"},
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index("ix_usage_created_at_brin", table_name="usage")
    op.create_index("ix_usage_created_at", "usage", ["created_at"])
    op.create_index("ix_usage_key_id", "usage", ["key_id"])
