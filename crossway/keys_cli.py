"""`crossway keys ...` and `crossway usage`: the admin API's work, straight on the database.

Running gateways see a change within `key_refresh_seconds`.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import re
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from crossway.api.key_specs import KeyChange, KeyCreate, parse
from crossway.config import Settings
from crossway.errors import GatewayError
from crossway.providers import PROVIDER_TYPES
from crossway.store.engine import create_engine
from crossway.store.keys import ApiKey, DuplicateName, KeyStore
from crossway.store.ledger import GROUPS, SUMMARY_COLUMNS, Ledger

_BUDGET = re.compile(r"^(\d+(?:\.\d+)?)(?:/(day|daily|month|monthly|total))?$")
_PERIOD = {
    None: "total",
    "total": "total",
    "day": "daily",
    "daily": "daily",
    "month": "monthly",
    "monthly": "monthly",
}
_DURATION = re.compile(r"^(\d+)([dhm])$")


class CliError(Exception):
    """A mistake on the command line, said plainly."""


def _budgets(values: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for value in values:
        match = _BUDGET.match(value.strip())
        if not match:
            raise CliError(
                f"--budget {value!r}: write AMOUNT/day, AMOUNT/month or AMOUNT "
                "(in total), e.g. 20/month"
            )
        out[_PERIOD[match.group(2)]] = float(match.group(1))
    return out


def _expiry(value: str) -> str:
    match = _DURATION.match(value)
    if match:
        amount, unit = int(match.group(1)), match.group(2)
        delta = {
            "d": dt.timedelta(days=amount),
            "h": dt.timedelta(hours=amount),
            "m": dt.timedelta(minutes=amount),
        }[unit]
        return (dt.datetime.now(dt.UTC) + delta).isoformat()
    return value


def _spec(args: argparse.Namespace) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    for name in ("name", "owner"):
        if getattr(args, name, None) is not None:
            spec[name] = getattr(args, name)
    for name in ("models", "vendors"):
        value = getattr(args, name, None)
        if value is not None:
            spec[name] = [v.strip() for v in value.split(",") if v.strip()]
    if getattr(args, "budget", None):
        spec["budget"] = _budgets(args.budget)
    limits = {
        k: getattr(args, k)
        for k in ("rpm", "tpm", "max_concurrency")
        if getattr(args, k, None) is not None
    }
    if limits:
        spec["limits"] = limits
    if getattr(args, "expires", None):
        spec["expires_at"] = _expiry(args.expires)
    if getattr(args, "metadata", None):
        spec["metadata"] = dict(item.split("=", 1) for item in args.metadata)
    return spec


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    if not rows:
        return "(none)"
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6f}".rstrip("0").rstrip(".") or "0"
    if isinstance(value, list):
        return ",".join(map(str, value)) or "*"
    return str(value)


def _summary(key: ApiKey) -> dict[str, Any]:
    budget = ", ".join(
        f"{v:g}/{p}"
        for p, v in (
            ("day", key.budget_daily),
            ("month", key.budget_monthly),
            ("total", key.budget_total),
        )
        if v is not None
    )
    return {
        "id": key.id,
        "name": key.name,
        "prefix": key.prefix + "...",
        "owner": key.owner,
        "models": key.models,
        "budget": budget or None,
        "rpm": key.rpm,
        "enabled": key.enabled,
        "spend": key.spend_total,
    }


def _run(settings: Settings, work: Callable[[KeyStore, Ledger], Awaitable[int]]) -> int:
    async def main() -> int:
        engine = create_engine(settings.database_url)
        try:
            return await work(KeyStore(engine), Ledger(engine))
        finally:
            await engine.dispose()

    try:
        return asyncio.run(main())
    except (GatewayError, CliError) as exc:
        print(f"error: {getattr(exc, 'message', exc)}")
        return 2
    except DuplicateName as exc:
        print(f"error: name: a key named {exc} exists already")
        return 2


def _vendors(settings: Settings) -> set[str]:
    return set(PROVIDER_TYPES) | set(settings.providers)


def keys_command(settings: Settings, args: argparse.Namespace) -> int:
    action = args.keys_command

    async def work(store: KeyStore, ledger: Ledger) -> int:
        if action == "create":
            spec = parse(KeyCreate, _spec(args), _vendors(settings))
            key, secret = await store.create(**spec.columns())
            print(f"created {key.id} ({key.name}). The key, shown once:\n\n    {secret}\n")
            return 0
        if action == "list":
            print(
                _table(
                    [_summary(k) for k in await store.list()],
                    [
                        "id",
                        "name",
                        "prefix",
                        "owner",
                        "models",
                        "budget",
                        "rpm",
                        "enabled",
                        "spend",
                    ],
                )
            )
            return 0
        found = await store.get(args.key)
        if found is None:
            print(f"error: no key {args.key!r}")
            return 1
        key = found
        if action == "show":
            print(orjson.dumps(key.public(), option=orjson.OPT_INDENT_2).decode())
        elif action == "update":
            change = parse(KeyChange, _spec(args), _vendors(settings))
            await store.update(key.id, **change.columns())
            print(f"updated {key.id}")
        elif action in ("disable", "enable"):
            await store.update(key.id, enabled=action == "enable")
            print(f"{action}d {key.id}")
        elif action == "rotate":
            rotated = await store.rotate(key.id)
            assert rotated is not None
            print(f"rotated {key.id}. The new key, shown once:\n\n    {rotated[1]}\n")
        elif action == "delete":
            await store.delete(key.id)
            print(f"deleted {key.id}")
        return 0

    return _run(settings, work)


def usage_command(settings: Settings, args: argparse.Namespace) -> int:
    async def work(store: KeyStore, ledger: Ledger) -> int:
        key_id = args.key
        if key_id and not key_id.startswith("key_"):
            key = await store.get(key_id)
            key_id = key.id if key else key_id
        since = dt.datetime.fromisoformat(args.since) if args.since else None
        until = dt.datetime.fromisoformat(args.until) if args.until else None
        rows = await ledger.summary(
            key_id=key_id,
            model=args.model,
            vendor=args.vendor,
            since=since,
            until=until,
            group_by=args.group_by,
        )
        columns = ([args.group_by] if args.group_by else []) + list(SUMMARY_COLUMNS)
        print(_table(rows, columns))
        return 0

    return _run(settings, work)


def add_parsers(
    sub: Any, with_config: Callable[[argparse.ArgumentParser], argparse.ArgumentParser]
) -> None:
    keys = sub.add_parser("keys", help="virtual API keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)

    def fields(p: argparse.ArgumentParser, create: bool) -> None:
        p.add_argument("--name", required=create)
        p.add_argument("--owner")
        p.add_argument("--models", help="comma-separated glob patterns, e.g. 'gpt-4o,claude-*'")
        p.add_argument("--vendors", help="comma-separated vendors or provider names")
        p.add_argument(
            "--budget",
            action="append",
            help="AMOUNT/day, AMOUNT/month or AMOUNT (total), in USD; may be given more than once",
        )
        p.add_argument("--rpm", type=int)
        p.add_argument("--tpm", type=int)
        p.add_argument("--max-concurrency", dest="max_concurrency", type=int)
        p.add_argument("--expires", help="an ISO time, or a duration like 30d, 12h")
        p.add_argument("--metadata", action="append", help="key=value; may repeat")

    fields(with_config(keys_sub.add_parser("create", help="create a key")), create=True)
    with_config(keys_sub.add_parser("list", help="list keys"))
    for action in ("show", "disable", "enable", "rotate", "delete"):
        p = with_config(keys_sub.add_parser(action, help=f"{action} a key"))
        p.add_argument("key", help="id or name")
    update = with_config(keys_sub.add_parser("update", help="change a key"))
    update.add_argument("key", help="id or name")
    fields(update, create=False)

    usage = with_config(sub.add_parser("usage", help="usage and cost from the ledger"))
    usage.add_argument("--key", help="id or name")
    usage.add_argument("--model")
    usage.add_argument("--vendor")
    usage.add_argument("--since", help="ISO time")
    usage.add_argument("--until", help="ISO time")
    usage.add_argument("--group-by", dest="group_by", choices=GROUPS)
