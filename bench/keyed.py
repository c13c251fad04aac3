"""--keys: `crossway-keys` (a virtual key, the Redis limiter, the usage ledger in Postgres)
beside `crossway` (the master key, no ledger), so the cost of keys, limits and the ledger is
measured in the same run.

The run gets a fresh Postgres database (dropped at the end) and a key made through the admin
API; a first answer must carry the x-ratelimit-* headers (the limits are in the path). After
crossway-keys is stopped with SIGTERM (it flushes its pending usage), the ledger's rows are
counted against the requests it answered with the key.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import signal
import subprocess
from typing import Any

from common import CONNECTIONS, CROSSWAY, CROSSWAY_KEYS, say
from procs import Proc, post_once

from crossway.limits.resp import RespClient

PG_HOST = "127.0.0.1"
PG_URL = f"postgresql://postgres@{PG_HOST}:5432"
REDIS_URL = "redis://127.0.0.1:6379/0"
KEY_SPEC: dict[str, Any] = {
    "name": "bench",
    "limits": {"rpm": 100_000_000, "tpm": 1_000_000_000_000},
    "budget": {"daily": 1_000_000},
}
INT32_MAX = 2_147_483_647
LIMIT_HEADER = "x-ratelimit-limit-requests"
_STOPPED = re.compile(r"Crossway stopped; usage events dropped: (\d+)")  # its last line
_SAFE = re.compile(r"^[A-Za-z0-9_-]{1,60}$")  # database names and key ids put into SQL


def psql(sql: str, database: str = "postgres") -> str:
    """One statement through psql on 127.0.0.1 as postgres; its unaligned output."""
    argv = ["psql", "-h", PG_HOST, "-U", "postgres", "-d", database, "-v", "ON_ERROR_STOP=1"]
    done = subprocess.run(
        [*argv, "-tAc", sql], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
    )
    if done.returncode != 0:
        raise RuntimeError(f"psql failed ({done.returncode}) on {sql!r}: {done.stderr.strip()}")
    return done.stdout.strip()


class KeysRun:
    """The --keys state of one run: the database, the key, and the ledger count at the end."""

    def __init__(self) -> None:
        self.database = f"crossway_bench_{secrets.token_hex(4)}"
        self.secret: str | None = None
        self.key_id: str | None = None
        self.header_value: str | None = None
        self.key_spec: dict[str, Any] = KEY_SPEC  # the one the key was made with
        psql(f"CREATE DATABASE {self.database}")
        say(f"created Postgres database {self.database} for {CROSSWAY_KEYS}")

    @property
    def database_url(self) -> str:
        return f"{PG_URL}/{self.database}"

    def settings(self, target: str) -> dict[str, str]:
        """The config each Crossway gets in a --keys run (YAML values as text)."""
        if target == CROSSWAY_KEYS:
            return {
                "database_url": f'"{self.database_url}"',
                "redis_url": f'"{REDIS_URL}"',
                "usage_ledger": "true",
            }
        return {"usage_ledger": "false"}  # crossway: master key, its SQLite file, no ledger

    def describe(self) -> dict[str, Any]:
        """What the JSON says about the two configurations."""
        return {
            CROSSWAY: "master key; usage_ledger: false; log_requests: true; SQLite file "
            "(master key state only); in-memory limiter, no limits",
            CROSSWAY_KEYS: f"virtual key {KEY_SPEC}; redis_url {REDIS_URL}; "
            f"usage_ledger: true into a fresh Postgres database; log_requests: true",
            "database": self.database,
        }

    def make_key(self, proc: Proc, warn: list[str]) -> str:
        """The key through the admin API (master key); the key's secret, for that target's
        requests. Should Crossway fail to store KEY_SPEC (a 5xx), the key is made again with
        limits that fit a 32-bit column, and a warning says so: the measured path is the same,
        and tokens per minute stay far above what the bench sends."""
        spec = KEY_SPEC
        status, raw, _ = post_once(proc.port, json.dumps(spec).encode(), 10, path="/admin/keys")
        if status >= 500:
            limits = {k: min(v, INT32_MAX) for k, v in KEY_SPEC["limits"].items()}
            spec = {**KEY_SPEC, "limits": limits}
            warn.append(
                f"Crossway ({CROSSWAY_KEYS}) answered {status} to POST /admin/keys with "
                f"{KEY_SPEC} ({raw[:200]!r}; see its log); made the key with limits "
                f"{limits} instead"
            )
            say(f"{CROSSWAY_KEYS}: POST /admin/keys answered {status}; again with {limits}")
            status, raw, _ = post_once(proc.port, json.dumps(spec).encode(), 10, path="/admin/keys")
        if status != 201:
            raise RuntimeError(f"POST /admin/keys answered {status}: {raw[:500]!r}")
        self.key_spec = spec
        doc = json.loads(raw)
        self.secret, self.key_id = str(doc["key"]), str(doc["id"])
        if not _SAFE.match(self.key_id):
            raise RuntimeError(f"unexpected key id {self.key_id!r}")
        say(f"{CROSSWAY_KEYS}: created key {self.key_id} ({doc.get('prefix')}...)")
        return self.secret

    def check_first_answer(self, proc: Proc, body: bytes) -> str | None:
        """None when a chat with the key is a 200 carrying x-ratelimit-limit-requests."""
        assert self.secret is not None
        status, raw, got = post_once(proc.port, body, timeout=10, token=self.secret)
        if status != 200:
            return f"status {status} with the virtual key: {raw[:300]!r}"
        self.header_value = got.get(LIMIT_HEADER)
        if self.header_value is None:
            return f"no {LIMIT_HEADER} header in the answer (headers: {sorted(got)})"
        limits = {k: v for k, v in got.items() if k.startswith("x-ratelimit")}
        say(f"{CROSSWAY_KEYS}: first answer with the key carries {limits}")
        return None

    def ledger(self, proc: Proc, answered: int, wrk_runs: int) -> dict[str, Any]:
        """Stop crossway-keys (SIGTERM: it writes its pending usage), then count the ledger:
        rows of the key against the requests answered with it. wrk does not count the up to
        CONNECTIONS requests it cuts at the end of each of its `wrk_runs` runs, so rows may
        exceed the answered count by that much, never fall short of it."""
        proc.stop()
        code = proc.popen.returncode  # 0; uvicorn re-raises SIGTERM after a clean stop: -15
        stopped = _STOPPED.findall(proc.log_tail(5))
        total = int(psql("SELECT count(*) FROM usage", self.database))
        by_status: dict[str, int] = {}
        if self.key_id is not None:
            rows = psql(
                f"SELECT status, count(*) FROM usage WHERE key_id = '{self.key_id}' "
                "GROUP BY status ORDER BY status",
                self.database,
            )
            for line in rows.splitlines():
                status, _, n = line.partition("|")
                by_status[status] = int(n)
        rows_key = sum(by_status.values())
        cut_allowance = CONNECTIONS * wrk_runs
        return {
            "database": self.database,
            "exit_code_after_sigterm": code,
            "stopped_cleanly": code in (0, -signal.SIGTERM) and bool(stopped),
            "usage_events_dropped_at_stop": int(stopped[-1]) if stopped else None,
            "rows_total": total,
            "rows_with_key": rows_key,
            "rows_with_key_by_status": by_status,
            "requests_answered_with_key": answered,
            "rows_minus_answered": rows_key - answered,
            "cut_allowance": cut_allowance,
            "shortfall": max(0, answered - rows_key),
            "kept_up": answered <= rows_key <= answered + cut_allowance,
        }

    def finish(
        self, proc: Proc | None, count: bool, answered: int, wrk_runs: int, warn: list[str]
    ) -> dict[str, Any]:
        """At the end of the run: crossway-keys (proc) stopped, the ledger counted when asked
        and the key exists (`crossway_keys_ledger`, for the results), then the database
        dropped, whatever happened."""
        out: dict[str, Any] = {"crossway_keys_key_spec": self.key_spec}
        try:
            if proc is not None and count and self.key_id is not None:
                ledger = self.ledger(proc, answered, wrk_runs)
                out["crossway_keys_ledger"] = ledger
                warn += ledger_warnings(ledger)
                say(
                    f"{CROSSWAY_KEYS} ledger: {ledger['rows_with_key']} rows with the key for "
                    f"{answered} requests answered ({ledger['rows_total']} rows in all)"
                )
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
            warn.append(f"Crossway ({CROSSWAY_KEYS}) ledger could not be counted: {exc}")
        finally:
            if proc is not None:
                proc.stop()  # before the database goes (a no-op when counted above)
            self.close()
        return out

    def close(self) -> None:
        """Drop the database and the key's Redis counters; says so when it cannot."""
        try:
            psql(f"DROP DATABASE IF EXISTS {self.database} WITH (FORCE)")
            say(f"dropped Postgres database {self.database}")
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
            say(f"could not drop {self.database}: {exc}")
        if self.key_id is None:
            return
        try:
            asyncio.run(_forget_counters(f"cw:{{{self.key_id}}}:*"))
        except (OSError, RuntimeError) as exc:
            say(f"could not delete the Redis counters of {self.key_id}: {exc}")


async def _forget_counters(pattern: str) -> None:
    """Crossway's own Redis client: the bench needs nothing beyond the gateway's install."""
    client = RespClient(REDIS_URL)
    try:
        found = await client.call("KEYS", pattern)
        if found:
            await client.call("DEL", *found)
    finally:
        await client.close()


def ledger_warnings(ledger: dict[str, Any]) -> list[str]:
    """A shortfall (rows lost or not flushed), an unclean stop, or more rows than wrk can
    explain. Prefixed "Crossway" so the work directory is kept for a look."""
    warn = []
    if not ledger["stopped_cleanly"]:
        warn.append(
            f"Crossway ({CROSSWAY_KEYS}) did not stop cleanly on SIGTERM (exit code "
            f"{ledger['exit_code_after_sigterm']}, no 'Crossway stopped' line): pending usage "
            "may not have been written"
        )
    if ledger["usage_events_dropped_at_stop"]:
        warn.append(
            f"Crossway ({CROSSWAY_KEYS}) dropped {ledger['usage_events_dropped_at_stop']} "
            "usage events (its last log line)"
        )
    if ledger["shortfall"]:
        warn.append(
            f"Crossway ({CROSSWAY_KEYS}) LEDGER SHORTFALL: {ledger['rows_with_key']} rows in "
            f"Postgres for {ledger['requests_answered_with_key']} requests answered with the "
            f"key ({ledger['shortfall']} missing)"
        )
    elif not ledger["kept_up"]:
        warn.append(
            f"Crossway ({CROSSWAY_KEYS}) ledger has {ledger['rows_minus_answered']} rows more "
            f"than requests answered, more than the {ledger['cut_allowance']} wrk may cut"
        )
    return warn
