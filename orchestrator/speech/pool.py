"""Decoders shared by every call of a service, lent one utterance at a time.

A pocketsphinx decoder holds its own copy of the acoustic model (~30 MB), and one per call made memory
grow with every call and with every concurrent call (issue 11: ~21 MB per short call, ~33 MB per concurrent
call), because glibc keeps what worker threads free. A call only needs a decoder while its caller speaks,
so decoders are lent per utterance: a handful serve many calls, idle ones beyond `keep_idle` are freed, and
freed memory is handed back to the system with `malloc_trim`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import threading
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

__all__ = ["DecoderPool", "UtteranceDecoder", "release_freed_memory"]

class UtteranceDecoder(Protocol):
    """One utterance at a time, synchronous, used by one thread at a time (the asr module's `Decoded`)."""

    def begin(self, search: str) -> None: ...

    def feed(self, pcm: bytes) -> None: ...

    def finish(self) -> object: ...


D = TypeVar("D")


class DecoderPool(Generic[D]):
    """At most `max_size` decoders built by `build` (in a worker thread), lent by `acquire` and `release`.

        pool = DecoderPool(lambda: GrammarDecoder(spec), max_size=4)
        decoder = await pool.acquire()
        try: ...
        finally: pool.release(decoder)

    `acquire` waits when every decoder is lent out: the caller's audio queues meanwhile, nothing is lost.
    """

    def __init__(self, build: Callable[[], D], *, max_size: int = 4, keep_idle: int = 2) -> None:
        if max_size < 1 or keep_idle < 0:
            raise ValueError("a pool needs max_size >= 1 and keep_idle >= 0")
        self._build = build
        self._keep_idle = min(keep_idle, max_size)
        self._idle: list[D] = []
        self._lent = 0
        self._max_size = max_size
        self._slots: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def size(self) -> int:
        """Decoders alive: idle plus lent."""
        return len(self._idle) + self._lent

    async def acquire(self) -> D:
        slots = self._slots_here()
        await slots.acquire()
        try:
            decoder = self._idle.pop() if self._idle else await asyncio.to_thread(self._build)
        except BaseException:
            slots.release()
            raise
        self._lent += 1
        return decoder

    def release(self, decoder: D) -> None:
        """Give a decoder back; beyond `keep_idle` idle ones it is freed."""
        self._lent -= 1
        if len(self._idle) < self._keep_idle:
            self._idle.append(decoder)
        else:
            del decoder
            release_freed_memory()
        self._free_slot()

    def discard(self, decoder: D) -> None:
        """A decoder left mid-utterance (its call was cancelled): never lend it again."""
        self._lent -= 1
        del decoder
        release_freed_memory()
        self._free_slot()

    async def warm(self) -> None:
        """Build one decoder ahead of the first caller (building takes about half a second)."""
        self.release(await self.acquire())

    async def fill(self, count: int) -> None:
        """Build decoders one at a time until `count` are alive (at most `keep_idle`, since more would be
        freed): done at start-up, so the first callers do not wait for decoders to load their models.

        One at a time, because building several at once on a busy machine made each take seconds.
        """
        target = min(count, self._keep_idle)
        slots = self._slots_here()
        while self.size < target:
            await slots.acquire()
            try:
                if self.size >= target:  # callers' own builds got there meanwhile
                    return
                self._lent += 1  # counted while it builds, so a concurrent fill does not overshoot
                try:
                    decoder = await _in_daemon_thread(self._build)
                finally:
                    self._lent -= 1
                self._idle.append(decoder)  # before the slot is freed: a waiting caller takes it
            finally:
                slots.release()

    def _slots_here(self) -> asyncio.Semaphore:
        # A factory may outlive an event loop (tests run one loop each): idle, the pool moves along.
        loop = asyncio.get_running_loop()
        if self._slots is None or (self._loop is not loop and self._lent == 0):
            self._slots = asyncio.Semaphore(self._max_size)
            self._loop = loop
        return self._slots

    def _free_slot(self) -> None:
        if self._slots is not None:
            self._slots.release()


def _in_daemon_thread(work: Callable[[], D]) -> asyncio.Future[D]:
    """`work()` in a thread of its own that never holds up the interpreter's exit.

    asyncio.run waits for its default executor's threads on the way out, so a service stopped while a
    decoder was still loading its models (seconds on a busy machine) would wait for it; a fill's decoders
    are nobody's yet, and one finished after the loop has gone is simply dropped.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[D] = loop.create_future()

    def succeed(result: D) -> None:
        if not future.done():  # a cancelled fill no longer wants it
            future.set_result(result)

    def fail(error: BaseException) -> None:
        if not future.done():
            future.set_exception(error)

    def run() -> None:
        try:
            result = work()
        except BaseException as exc:  # handed to the awaiting task
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits any more
                loop.call_soon_threadsafe(fail, exc)
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(succeed, result)

    threading.Thread(target=run, name="decoder-prepare", daemon=True).start()
    return future


def _load_libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    return libc if hasattr(libc, "malloc_trim") else None


_LIBC = _load_libc()


def release_freed_memory() -> None:
    """Hand memory glibc keeps after frees back to the system (a no-op without glibc)."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)
