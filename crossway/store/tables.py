"""The tables, in SQLAlchemy Core: keys, the usage ledger, and small gateway state.

Core rather than the ORM: the ledger is written in batches of hundreds of rows and read in
aggregates, where plain statements are both faster and clearer.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("owner", sa.String(200)),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),  # sha256, hex
    sa.Column("prefix", sa.String(20), nullable=False),  # shown in lists: "sk-cw-AbC1"
    sa.Column("models", sa.JSON, nullable=False),  # glob patterns; [] means any
    sa.Column("vendors", sa.JSON, nullable=False),  # [] means any
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

usage = sa.Table(
    "usage",
    metadata,
    sa.Column("request_id", sa.String(40), primary_key=True),
    # indexed by B-trees on SQLite, by a BRIN index on Postgres (migration 0005)
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("key_id", sa.String(40), index=True),  # SQLite only
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
    # billed units of the media endpoints (migration 0002)
    sa.Column("images", sa.Integer, nullable=False, server_default="0"),
    sa.Column("characters", sa.Integer, nullable=False, server_default="0"),
    sa.Column("audio_seconds", sa.Float, nullable=False, server_default="0"),
)

meta = sa.Table(
    "crossway_meta",
    metadata,
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("value", sa.LargeBinary, nullable=False),
)
