"""DecoderPool: decoders shared by calls, lent one utterance at a time, bounded, and freed when idle."""

import asyncio
import threading

import pytest

from orchestrator.speech.pool import DecoderPool, release_freed_memory


class Built:
    """Something costly to build; the pool does not care what."""

    count = 0

    def __init__(self) -> None:
        Built.count += 1
        self.serial = Built.count


async def test_decoder_pool_lends_the_same_decoder_again_once_it_is_back():
    """A decoder given back is lent to the next utterance instead of building another."""
    pool = DecoderPool(Built, max_size=3)
    first = await pool.acquire()
    pool.release(first)
    assert await pool.acquire() is first
    assert pool.size == 1


async def test_decoder_pool_makes_the_next_caller_wait_when_all_are_lent():
    """With max_size lent out, acquire waits until one comes back, then gets that one."""
    pool = DecoderPool(Built, max_size=2)
    one, two = await pool.acquire(), await pool.acquire()
    waiting = asyncio.ensure_future(pool.acquire())
    await asyncio.sleep(0.05)
    assert not waiting.done()
    pool.release(two)
    assert await asyncio.wait_for(waiting, 5) is two
    pool.release(one)
    assert pool.size == 2


async def test_decoder_pool_frees_decoders_beyond_those_kept_idle():
    """After a burst of concurrent utterances only keep_idle decoders stay alive."""
    pool = DecoderPool(Built, max_size=5, keep_idle=2)
    lent = [await pool.acquire() for _ in range(5)]
    assert pool.size == 5
    for decoder in lent:
        pool.release(decoder)
    assert pool.size == 2


async def test_decoder_pool_never_lends_a_discarded_decoder_and_frees_its_slot():
    """A decoder dropped mid-utterance is not lent again, and its place can be refilled."""
    pool = DecoderPool(Built, max_size=1)
    dropped = await pool.acquire()
    pool.discard(dropped)
    again = await asyncio.wait_for(pool.acquire(), 5)
    assert again is not dropped


async def test_decoder_pool_gives_the_slot_back_when_building_fails():
    """A build that raises leaves the pool usable."""
    attempts = iter([RuntimeError("model missing"), None])

    def build() -> Built:
        failure = next(attempts)
        if failure is not None:
            raise failure
        return Built()

    pool = DecoderPool(build, max_size=1)
    with pytest.raises(RuntimeError, match="model missing"):
        await pool.acquire()
    assert isinstance(await asyncio.wait_for(pool.acquire(), 5), Built)


async def test_decoder_pool_fill_builds_decoders_before_anyone_asks():
    """fill(n) leaves n decoders idle, so the first n callers start decoding without waiting for a build."""
    pool = DecoderPool(Built, max_size=6, keep_idle=6)
    await pool.fill(3)
    assert pool.size == 3
    before = Built.count
    lent = [await pool.acquire() for _ in range(3)]
    assert Built.count == before  # all three were already built
    for decoder in lent:
        pool.release(decoder)


async def test_decoder_pool_fill_counts_decoders_callers_built_and_stops_at_keep_idle():
    """fill tops up to n alive (lent ones count), and never beyond what the pool would keep."""
    pool = DecoderPool(Built, max_size=6, keep_idle=2)
    lent = await pool.acquire()
    await pool.fill(5)
    assert pool.size == 2  # the lent one plus one more; a third would be freed on its release
    pool.release(lent)
    assert pool.size == 2


async def test_decoder_pool_fill_builds_one_at_a_time():
    """Building several at once on a busy machine made each take seconds: fill never overlaps builds."""
    building = 0
    most = 0

    def build() -> Built:
        nonlocal building, most
        building += 1
        most = max(most, building)
        threading.Event().wait(0.02)
        building -= 1
        return Built()

    pool = DecoderPool(build, max_size=4, keep_idle=4)
    await pool.fill(4)
    assert (pool.size, most) == (4, 1)


async def test_decoder_pool_a_cancelled_fill_leaves_the_pool_usable():
    """A service stopping while decoders are built cancels fill; every slot is back afterwards."""
    release = threading.Event()

    def build() -> Built:
        release.wait(5)
        return Built()

    pool = DecoderPool(build, max_size=1, keep_idle=1)
    filling = asyncio.ensure_future(pool.fill(1))
    await asyncio.sleep(0.05)
    filling.cancel()
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await filling
    assert pool.size == 0
    assert isinstance(await asyncio.wait_for(pool.acquire(), 5), Built)


def test_decoder_pool_a_fill_still_building_does_not_hold_up_the_service_s_exit():
    """asyncio.run waits for its executor's threads on the way out; a decoder a fill is still building is
    nobody's yet, so a service stopped meanwhile exits without waiting for it."""
    release, built = threading.Event(), threading.Event()

    def build() -> Built:
        release.wait(30)
        built.set()
        return Built()

    async def start_then_stop() -> None:
        pool = DecoderPool(build, max_size=1, keep_idle=1)
        filling = asyncio.ensure_future(pool.fill(1))
        await asyncio.sleep(0.05)
        filling.cancel()

    asyncio.run(start_then_stop())
    assert not built.is_set()  # the loop and its run ended while the decoder was still being built
    release.set()


def test_decoder_pool_rejects_an_empty_size():
    """max_size below one is a clear error."""
    with pytest.raises(ValueError, match="max_size"):
        DecoderPool(Built, max_size=0)


def test_release_freed_memory_is_safe_to_call_any_time():
    """Trimming the heap is harmless when there is nothing to give back."""
    release_freed_memory()
    release_freed_memory()
