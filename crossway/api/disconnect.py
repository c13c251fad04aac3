"""Noticing a client that leaves, so its upstream request is cancelled instead of paid for."""

from __future__ import annotations

import asyncio

from crossway.api.http import Receive


class ClientWatch:
    """Cancels the task serving a request when its client disconnects.

    ASGI servers only say a client left through `receive()`, so a small task waits on it.
    """

    __slots__ = ("_left", "_task", "_watcher")

    def __init__(self, receive: Receive) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._task = task
        self._left = False
        self._watcher = task.get_loop().create_task(self._watch(receive))

    async def _watch(self, receive: Receive) -> None:
        try:
            while (await receive())["type"] != "http.disconnect":
                pass
        except asyncio.CancelledError:
            # stopped because the answer is done. Ending quietly rather than cancelled keeps
            # the CancelledError off the task: stored there, its traceback would tie task,
            # frame and watch into a cycle only the garbage collector frees, every request.
            return
        self._left = True
        self._task.cancel()

    def client_left(self) -> bool:
        """Whether a CancelledError being handled came from the client leaving; if so the
        cancellation is consumed, so the task can record what happened and end normally."""
        if self._left:
            self._task.uncancel()
            return True
        return False

    def stop(self) -> None:
        self._watcher.cancel()
