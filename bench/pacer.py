"""Pacer benchmark: CPU of the outbound audio path, a write per frame or batched. Prints JSON.

`--streams` WebSockets on loopback, each fed `--seconds` of agent audio by a `PacedWriter` on the
real clock (the service's writer and aiohttp's `send_bytes`, the platform's reader in the same
process), once per `batch_frames` value. CPU is this process's, both ends of the sockets.

    python bench/pacer.py [--streams 60] [--seconds 12] [--batches 1,2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import aiohttp
from aiohttp import web

from orchestrator.audio.pacer import PacedWriter


async def _one_batch(streams: int, seconds: int, batch: int) -> dict[str, float | int]:
    writes = 0

    async def agent(request: web.Request) -> web.WebSocketResponse:
        nonlocal writes
        ws = web.WebSocketResponse()
        await ws.prepare(request)

        async def send(payload: bytes) -> None:
            nonlocal writes
            writes += 1
            await ws.send_bytes(payload)

        writer = PacedWriter(send, batch_frames=batch)
        task = asyncio.get_running_loop().create_task(writer.run())
        writer.enqueue(b"\x10\x00" * 16000 * seconds, utterance_id="u1")
        writer.end_utterance("u1")
        await writer.wait_idle()
        task.cancel()
        await ws.close()
        return ws

    app = web.Application()
    app.router.add_get("/", agent)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]

    async def platform() -> None:
        url = f"http://127.0.0.1:{port}/"
        async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
            async for _ in ws:
                pass

    began = time.process_time()
    await asyncio.gather(*(platform() for _ in range(streams)))
    cpu_s = time.process_time() - began
    await runner.cleanup()
    audio_s = streams * seconds
    return {
        "batch_frames": batch,
        "writes": writes,
        "cpu_ms_per_audio_s": round(cpu_s * 1000 / audio_s, 3),
    }


async def _run(streams: int, seconds: int, batches: list[int]) -> dict[str, object]:
    return {
        "streams": streams,
        "seconds": seconds,
        "runs": [await _one_batch(streams, seconds, batch) for batch in batches],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--streams", type=int, default=60)
    parser.add_argument("--seconds", type=int, default=12)
    parser.add_argument("--batches", default="1,2,1,2", help="batch_frames values, run in order")
    args = parser.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    print(json.dumps(asyncio.run(_run(args.streams, args.seconds, batches))))


if __name__ == "__main__":
    main()
