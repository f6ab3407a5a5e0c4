"""Sautikit's media WebSocket (mod_audio_fork): the subprotocol gate, the metadata frame, PCM in, audio and
`killAudio` out.

`media_socket_for()` refuses a handshake without the `audio.drachtio.org` subprotocol with HTTP 400 *before* any
upgrade (aiohttp itself would accept it). `MediaStream` then has one reader (`frames()`) and serialises writers,
so the paced writer and control messages never interleave a frame.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import structlog
from aiohttp import WSMsgType, web

from orchestrator.errors import StreamError
from orchestrator.telephony.dtmf import parse_dtmf
from orchestrator.telephony.metadata import StreamMetadata, parse_metadata

__all__ = [
    "SUBPROTOCOL",
    "MediaStream",
    "StreamClosed",
    "StreamKeys",
    "StreamPcm",
    "accept_media_stream",
    "media_socket_for",
]

SUBPROTOCOL = "audio.drachtio.org"
# A 20 ms stereo frame at 16 kHz is 1280 bytes; the fork may flush more. 1 MiB leaves room and stops abuse.
MAX_MESSAGE_BYTES = 1 << 20

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamPcm:
    """Raw bytes of one binary frame, as received (any size, maybe an odd byte count)."""

    data: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamKeys:
    """The caller pressed one or more keys (a DTMF text frame, telephony/dtmf.py)."""

    keys: str


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamClosed:
    code: int | None
    reason: str


class MediaStream:
    """One accepted media socket."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self._ws = ws
        self._send_lock = asyncio.Lock()
        self.metadata: StreamMetadata | None = None
        self.bytes_in = 0
        self.bytes_out = 0

    @property
    def closed(self) -> bool:
        return self._ws.closed

    async def frames(self) -> AsyncIterator[StreamPcm | StreamKeys | StreamMetadata | StreamClosed]:
        """Yield the metadata frame (first text frame), then PCM frames and key presses, then one StreamClosed."""
        async for msg in self._ws:
            if msg.type is WSMsgType.BINARY:
                self.bytes_in += len(msg.data)
                yield StreamPcm(data=msg.data)
            elif msg.type is WSMsgType.TEXT:
                keys = parse_dtmf(msg.data)
                if keys is not None:
                    yield StreamKeys(keys=keys)
                elif self.metadata is None:
                    try:
                        self.metadata = parse_metadata(msg.data)
                    except StreamError as exc:
                        # A broken metadata frame must not end the call: the URL already named it.
                        log.warning("stream_metadata_invalid", reason=exc.reason)
                        continue
                    yield self.metadata
                else:
                    # Later text frames (marks, platform notices) are logged raw: their shapes are undocumented.
                    log.info("stream_text_frame", size=len(msg.data))
            elif msg.type is WSMsgType.ERROR:
                log.warning("stream_error", error=str(self._ws.exception()))
                break
        yield StreamClosed(code=self._ws.close_code, reason="closed by platform")

    async def send_audio(self, pcm: bytes) -> None:
        async with self._send_lock:
            if self._ws.closed:
                raise ConnectionResetError("media stream closed")
            await self._ws.send_bytes(pcm)
            self.bytes_out += len(pcm)

    async def kill_audio(self) -> None:
        """Ask the platform to drop the audio it has buffered but not yet played."""
        await self._send_text({"type": "killAudio"})

    async def _send_text(self, message: dict[str, object]) -> None:
        async with self._send_lock:
            if not self._ws.closed:
                await self._ws.send_str(json.dumps(message, separators=(",", ":")))

    async def close(self, *, code: int = 1000, reason: str = "") -> None:
        await self._ws.close(code=code, message=reason.encode())


def media_socket_for(request: web.Request) -> web.WebSocketResponse:
    """Check the handshake before upgrading: HTTPBadRequest when it is not a WebSocket offering our subprotocol.

    aiohttp alone would complete a handshake that offers no subprotocol, so the gate runs first.
    """
    ws = web.WebSocketResponse(
        protocols=(SUBPROTOCOL,), max_msg_size=MAX_MESSAGE_BYTES, heartbeat=None, autoping=True
    )
    ready = ws.can_prepare(request)
    if not ready.ok:
        raise web.HTTPBadRequest(text="expected a WebSocket upgrade")
    if ready.protocol != SUBPROTOCOL:
        offered = request.headers.get("Sec-WebSocket-Protocol", "")
        raise web.HTTPBadRequest(
            text=f"subprotocol {SUBPROTOCOL!r} required (offered: {offered or 'none'})"
        )
    return ws


async def accept_media_stream(request: web.Request, ws: web.WebSocketResponse) -> MediaStream:
    """Complete the handshake checked by `media_socket_for`."""
    await ws.prepare(request)
    return MediaStream(ws)
