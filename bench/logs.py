"""Reading the servers' logs afterwards: Crossway's usage accounting and any tracebacks.

A gateway that is fast because it dropped its accounting would be no result; this is the
check that every answered request left a usage event.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any


def usage_log_summary(log_path: Path) -> dict[str, Any]:
    """What Crossway's usage log recorded: events by status, queue-full warnings, errors.

    A usage event is a JSON object with a request_id, alone on its line or after a logging
    prefix; the parser accepts both so it survives changes of the log format."""
    statuses: dict[str, int] = {}
    events = warnings = errors = no_usage = 0
    dropped: str | None = None
    with log_path.open("rb") as f:
        for line in f:
            at = line.find(b'{"request_id"')
            if at >= 0:
                try:
                    doc = json.loads(line[at:])
                except ValueError:
                    errors += 1
                    continue
                events += 1
                key = str(doc.get("status"))
                statuses[key] = statuses.get(key, 0) + 1
                no_usage += doc.get("status") == 200 and doc.get("usage") is None
            elif b"usage queue full" in line:
                warnings += 1
            elif b"dropped" in line:
                dropped = line.decode(errors="replace").strip()
            elif b" ERROR " in line or b"Traceback" in line:
                errors += 1
    return {
        "events": events,
        "by_status": statuses,
        "ok_events_without_usage": no_usage,
        "queue_full_warnings": warnings,
        "error_lines": errors,
        "dropped_line": dropped,
    }


def usage_warnings(label: str, usage: dict[str, Any], log_path: Path) -> list[str]:
    """The warnings a usage summary calls for; label names the process ("Crossway", or
    "Crossway (crossway-granian)"), and starts with "Crossway" so the work dir is kept."""
    warn = []
    sent = usage["requests_answered_to_clients"]
    if usage["events"] < sent:
        warn.append(
            f"{label} logged {usage['events']} usage events for at least "
            f"{sent} answered requests (events lost)"
        )
    if usage["ok_events_without_usage"]:
        warn.append(
            f"{usage['ok_events_without_usage']} successful requests have no usage "
            f"in {label}'s usage log"
        )
    if usage["error_lines"]:
        warn.append(f"{label}'s log has {usage['error_lines']} error lines ({log_path})")
    return warn


def tracebacks(log_path: Path) -> dict[str, int]:
    """Exception types in a server's log (the last line of each traceback), counted."""
    counts: dict[str, int] = {}
    with contextlib.suppress(OSError), log_path.open("rb") as f:
        in_tb = False
        for raw in f:
            line = raw.decode(errors="replace").rstrip()
            if line.startswith("Traceback"):
                in_tb = True
            elif in_tb and line and not line[0].isspace():
                name = line.split(":", 1)[0]
                counts[name] = counts.get(name, 0) + 1
                in_tb = False
    return counts
