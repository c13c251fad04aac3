"""Request ids: unique, and in time order (the ledger's primary key grows at its end)."""

from __future__ import annotations

import re
import time

from crossway.api.asgi import new_request_id


def test_request_ids_sort_in_the_order_they_were_made() -> None:
    made = []
    for _ in range(200):
        made.append(new_request_id())
        time.sleep(0.0001)
    assert sorted(made) == made
    assert len(set(made)) == len(made)
    assert all(re.fullmatch(r"req_[0-9a-f]{25}", rid) for rid in made)


def test_request_ids_made_in_the_same_microsecond_differ() -> None:
    made = {new_request_id() for _ in range(10_000)}
    assert len(made) == 10_000
