"""A barge-in's killAudio leaves from the read loop, before the session reads the caller's next frame.

Under load a task of its own waited a whole turn of the event loop (hundreds of other calls' work) before
the platform heard it; and when the caller's audio arrives in a burst, the session would read the rest of
the burst first. Here the burst is a second of speech delivered at once over the agent's greeting.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from orchestrator.audio import synthesize_speech
from orchestrator.brains.bench import BenchBrain
from orchestrator.call.session import CallSession, SessionOptions
from orchestrator.flow.loader import load_flow
from orchestrator.orders.client import OrdersApiConfig, OrdersClient
from orchestrator.telephony.stream import StreamClosed, StreamPcm
from orchestrator.telephony.webhook import parse_webhook_fields
from tests.flows import ORDER_STATUS

FRAME = 640


class _BurstyLine:
    """A media stream whose caller speaks one burst of frames while the agent talks; logs reads and kills."""

    def __init__(self, speech: bytes) -> None:
        self.frames_in = [speech[i : i + FRAME] for i in range(0, len(speech) - FRAME + 1, FRAME)]
        self.log: list[str] = []
        self.closed = False

    async def frames(self) -> AsyncIterator[StreamPcm | StreamClosed]:
        await asyncio.sleep(0.5)  # the agent's greeting (the bench brain's tone) is playing by now
        for frame in self.frames_in:
            self.log.append("read")
            yield StreamPcm(data=frame)
        await asyncio.sleep(3.0)
        yield StreamClosed(code=1000, reason="caller hung up")

    async def send_audio(self, pcm: bytes) -> None:
        return None

    async def kill_audio(self) -> None:
        self.log.append("kill")

    async def close(self, *, code: int = 1000, reason: str = "") -> None:
        self.closed = True


@pytest.mark.looptime
async def test_barge_in_kill_goes_out_before_the_next_frame_of_a_burst_is_read():
    line = _BurstyLine(synthesize_speech("Wait, which order is that?"))
    orders = OrdersClient(OrdersApiConfig(base_url="http://orders.invalid"))
    session = CallSession(
        start=parse_webhook_fields({"CallSid": "HD_kill_order", "From": "0712345678"}),
        flow=load_flow(ORDER_STATUS),
        brain=BenchBrain(reply_ms=3000),
        orders=orders,
        options=SessionOptions(),
    )
    try:
        await session.run(line)  # type: ignore[arg-type]  # the stream's interface, without a socket
    finally:
        await orders.aclose()

    assert line.log.count("kill") == 1
    decided_at = line.log.index("kill")
    # Speech is confirmed a few frames in (min_speech_ms plus webrtcvad's onset hangover): the kill
    # follows that frame at once, with most of the burst still unread.
    assert 5 <= decided_at <= 12, line.log[:20]
    assert line.log[decided_at + 1] == "read"
    assert line.log.count("read") == len(line.frames_in)
