"""A fake OpenAI Realtime server: a real WebSocket on 127.0.0.1 speaking the GA event shapes.

It plays the model's side of a call script (`fixtures/calls/*.yaml`) the way the scripted brain
does: it listens to the caller's audio with a VAD (as the server's `server_vad` would), sends each
caller line it hears as an input transcription, then plays the script's next agent turns as
responses: 24 kHz synthesized audio deltas with their transcript, and function calls that wait for
a `function_call_output` and a `response.create`. The script's progress lives in the fake, not in a
connection, so after a reconnect it carries on where it was (as a real model would from the
summary it is given), replaying a reply the dropped connection never finished.

It behaves like the real service where the adapter could go wrong: it refuses a second
`response.create` while a response is active, refuses a truncate past the audio it sent, cancels a
response when the caller speaks over it (`interrupt_response`), and checks the `Authorization`
header. Its `response.function_call_arguments.done` events carry no `name` (only the
`response.output_item.added/done` events name the function), and with `call_on_cancel` a response
cancelled mid-way still delivers a function call that was in flight, before its `response.done`
with status `cancelled`. `Fault`s inject a dropped socket, malformed frames, a quota or rate-limit error; and
`refuse_connections` answers the first attempts with HTTP 503.

    async with FakeOpenAIRealtime(script) as fake:
        brain = OpenAIRealtimeBrain(fake.config())
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import count
from types import TracebackType
from typing import Literal

from aiohttp import WSMsgType, web

from orchestrator.audio.resample import Resampler
from orchestrator.audio.synth import synthesize_speech
from orchestrator.audio.vad import make_vad
from orchestrator.brains.openai_realtime import OPENAI_RATE, OpenAIRealtimeConfig
from orchestrator.brains.scripted import render_reply
from orchestrator.script import AgentTurn, CallerTurn, CallScript, SayStep, ToolStep

__all__ = ["API_KEY", "FakeOpenAIRealtime", "Fault"]

API_KEY = "sk-test-fake"
_PITCH_HZ = 120.0
_VERBATIM = re.compile(r"nothing else: (\".*\")\s*$", re.DOTALL)


@dataclass(frozen=True, slots=True, kw_only=True)
class Fault:
    """Something going wrong once: after caller line N is transcribed, or as connection N opens."""

    action: Literal["drop", "malformed", "quota", "rate_limit", "quota_response"]
    after_caller_line: int | None = None  # 1-based
    on_connection: int | None = None  # 1-based, fires on that connection's first session.update
    count: int = 1  # malformed frames to send


class _Conn:
    """One client connection: its socket, its VAD, the response in progress."""

    def __init__(self, request: web.Request, ws: web.WebSocketResponse, number: int) -> None:
        self.request = request
        self.ws = ws
        self.number = number
        self.vad = make_vad("webrtc", rate=16000)
        self.to_16k = Resampler(OPENAI_RATE, 16000)
        self.interrupt_response = True
        self.create_response = True
        self.response_id: str | None = None
        self.response_task: asyncio.Task[None] | None = None
        self.item_audio_ms: dict[str, int] = {}
        self.continue_turn: asyncio.Future[None] | None = None
        self.playing: list[AgentTurn] = []  # turns of the response in progress, until it completes
        self.configured = False


class FakeOpenAIRealtime:
    """Serve the model's side of `script` at `url` inside `async with`; records the traffic."""

    def __init__(
        self,
        script: CallScript | None = None,
        *,
        faults: tuple[Fault, ...] = (),
        refuse_connections: int = 0,
        chunk_ms: int = 100,
        pace: float = 0.5,
        call_on_cancel: str | None = None,
    ) -> None:
        self.script = script
        self.call_on_cancel = call_on_cancel  # a tool "called" by every response that gets cancelled
        self.faults = list(faults)
        self.refuse_connections = refuse_connections
        self.chunk_ms = chunk_ms
        # Seconds of sending per second of audio: a real model is faster than real time.
        self.pace = pace
        self.received: list[dict[str, object]] = []
        self.sent: list[dict[str, object]] = []
        self.audio_in_bytes = 0  # caller audio received, at 24 kHz
        self.attempts = 0
        self.connections = 0
        self.models: list[str] = []
        turns = script.turns if script else []
        self._caller_lines = [t.caller for t in turns if isinstance(t, CallerTurn)]
        self._agent_turns: dict[int, list[AgentTurn]] = {}
        heard = 0
        for turn in turns:
            if isinstance(turn, CallerTurn):
                heard += 1
            elif isinstance(turn, AgentTurn):
                self._agent_turns.setdefault(heard, []).append(turn)
        self._heard = 0
        self._due: list[AgentTurn] = list(self._agent_turns.get(0, []))
        self._last_result: Mapping[str, object] = {}
        self._ids = count(1)
        self._runner: web.AppRunner | None = None
        self._conns: set[_Conn] = set()
        self.url = ""

    # --- lifecycle --------------------------------------------------------------------------

    async def __aenter__(self) -> FakeOpenAIRealtime:
        app = web.Application()
        app.router.add_get("/v1/realtime", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"ws://{host}:{port}/v1/realtime"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for conn in list(self._conns):
            if conn.response_task is not None:
                conn.response_task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()

    def config(self, **overrides: object) -> OpenAIRealtimeConfig:
        """A client configuration pointing at this fake."""
        return OpenAIRealtimeConfig.from_env(
            {"OPENAI_API_KEY": API_KEY}, url=self.url, heartbeat_s=None, **overrides
        )

    # --- what the tests read ----------------------------------------------------------------

    def received_of(self, kind: str) -> list[dict[str, object]]:
        return [m for m in self.received if m.get("type") == kind]

    def sent_of(self, kind: str) -> list[dict[str, object]]:
        return [m for m in self.sent if m.get("type") == kind]

    # --- the socket -------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.attempts += 1
        if self.attempts <= self.refuse_connections:
            return web.Response(status=503, text="upstream unavailable")
        if request.headers.get("Authorization") != f"Bearer {API_KEY}":
            return web.json_response({"error": {"code": "invalid_api_key"}}, status=401)
        self.models.append(request.query.get("model", ""))
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.connections += 1
        conn = _Conn(request, ws, self.connections)
        self._conns.add(conn)
        try:
            await self._send(conn, {"type": "session.created", "session": {"type": "realtime"}})
            async for message in ws:
                if message.type is not WSMsgType.TEXT:
                    continue
                event = json.loads(message.data)
                self._record(event)
                await self._on_event(conn, event)
        except ConnectionError:
            pass
        finally:
            self._conns.discard(conn)
            if conn.response_task is not None and not conn.response_task.done():
                conn.response_task.cancel()
                # The model never finished this reply: asked on a new connection, it gives it again.
                self._due = conn.playing + self._due
        return ws

    def _record(self, event: dict[str, object]) -> None:
        if event.get("type") != "input_audio_buffer.append":  # too many to keep
            self.received.append(event)

    async def _send(self, conn: _Conn, event: dict[str, object]) -> None:
        if conn.ws.closed:
            raise ConnectionError("client gone")
        event = {"event_id": f"event_{next(self._ids)}", **event}
        if event["type"] != "response.output_audio.delta":
            self.sent.append(event)
        await conn.ws.send_str(json.dumps(event))

    async def _error(
        self, conn: _Conn, code: str, message: str, *, kind: str = "invalid_request_error"
    ) -> None:
        error = {"type": kind, "code": code, "message": message}
        await self._send(conn, {"type": "error", "error": error})

    # --- client events ----------------------------------------------------------------------

    async def _on_event(self, conn: _Conn, event: dict[str, object]) -> None:
        kind = event.get("type")
        if kind == "input_audio_buffer.append":
            pcm24 = base64.b64decode(str(event["audio"]))
            self.audio_in_bytes += len(pcm24)
            await self._hear(conn, pcm24)
        elif kind == "session.update":
            await self._on_session_update(conn, event)
        elif kind == "conversation.item.create":
            item = event.get("item")
            if isinstance(item, dict) and item.get("type") == "function_call_output":
                output = json.loads(str(item["output"]))
                self._last_result = output if isinstance(output, dict) else {}
            await self._send(conn, {"type": "conversation.item.added", "item": item})
        elif kind == "response.create":
            await self._on_response_create(conn, event)
        elif kind == "response.cancel":
            if conn.response_id is None:
                await self._error(conn, "response_cancel_not_active", "no active response")
            else:
                await self._cancel(conn)
        elif kind == "conversation.item.truncate":
            await self._on_truncate(conn, event)

    async def _on_session_update(self, conn: _Conn, event: dict[str, object]) -> None:
        session = event.get("session")
        assert isinstance(session, dict), event
        assert session.get("type") == "realtime", event
        detection = session.get("audio", {}).get("input", {}).get("turn_detection")
        if isinstance(detection, dict):
            conn.interrupt_response = bool(detection.get("interrupt_response", True))
            conn.create_response = bool(detection.get("create_response", True))
        await self._send(conn, {"type": "session.updated", "session": session})
        if not conn.configured:
            conn.configured = True
            for fault in self._take(on_connection=conn.number):
                await self._inject(conn, fault)

    async def _on_response_create(self, conn: _Conn, event: dict[str, object]) -> None:
        if conn.response_id is not None:
            await self._error(
                conn, "conversation_already_has_active_response", "a response is active"
            )
            return
        response = event.get("response")
        body = response if isinstance(response, dict) else {}
        metadata = body.get("metadata")
        instructions = body.get("instructions")
        verbatim = _VERBATIM.search(instructions) if isinstance(instructions, str) else None
        if verbatim is not None:
            text = json.loads(verbatim.group(1))
            self._start(conn, self._say_response(conn, text, metadata))
        elif conn.continue_turn is not None and not conn.continue_turn.done():
            conn.continue_turn.set_result(None)
        else:
            turns, self._due = self._due, []
            self._start(conn, self._play(conn, turns))

    async def _on_truncate(self, conn: _Conn, event: dict[str, object]) -> None:
        item_id = str(event.get("item_id"))
        end = event.get("audio_end_ms")
        if item_id not in conn.item_audio_ms:
            await self._error(conn, "item_not_found", f"no item {item_id}")
        elif not isinstance(end, int) or end > conn.item_audio_ms[item_id]:
            await self._error(conn, "invalid_value", "audio_end_ms is past the audio")
        else:
            truncated = {"item_id": item_id, "content_index": 0, "audio_end_ms": end}
            await self._send(conn, {"type": "conversation.item.truncated", **truncated})

    # --- listening --------------------------------------------------------------------------

    async def _hear(self, conn: _Conn, pcm24: bytes) -> None:
        for event in conn.vad.feed(conn.to_16k.process(pcm24)):
            item_id = f"item_in_{next(self._ids)}"
            if event.kind == "speech_started":
                started = {"audio_start_ms": event.at_ms, "item_id": item_id}
                await self._send(conn, {"type": "input_audio_buffer.speech_started", **started})
                if conn.response_id is not None and conn.interrupt_response:
                    await self._cancel(conn)
            else:
                stopped = {"audio_end_ms": event.at_ms, "item_id": item_id}
                await self._send(conn, {"type": "input_audio_buffer.speech_stopped", **stopped})
                await self._send(conn, {"type": "input_audio_buffer.committed", "item_id": item_id})
                await self._caller_line_heard(conn, item_id)

    async def _caller_line_heard(self, conn: _Conn, item_id: str) -> None:
        if self._heard >= len(self._caller_lines):
            return
        text = self._caller_lines[self._heard]
        self._heard += 1
        self._due = list(self._agent_turns.get(self._heard, []))
        await self._send(
            conn,
            {
                "type": "conversation.item.input_audio_transcription.completed",
                "item_id": item_id,
                "content_index": 0,
                "transcript": text,
            },
        )
        for fault in self._take(after_caller_line=self._heard):
            await self._inject(conn, fault)
        if conn.ws.closed or not conn.create_response or not self._due:
            return
        if conn.response_id is None:
            turns, self._due = self._due, []
            self._start(conn, self._play(conn, turns))

    # --- speaking ---------------------------------------------------------------------------

    def _start(self, conn: _Conn, body: object) -> None:
        assert asyncio.iscoroutine(body)
        conn.response_task = asyncio.get_running_loop().create_task(body)

    async def _open(self, conn: _Conn, metadata: object = None) -> str:
        response_id = f"resp_{next(self._ids)}"
        conn.response_id = response_id
        response: dict[str, object] = {
            "id": response_id,
            "object": "realtime.response",
            "status": "in_progress",
        }
        if isinstance(metadata, dict):
            response["metadata"] = metadata
        await self._send(conn, {"type": "response.created", "response": response})
        return response_id

    async def _done(
        self,
        conn: _Conn,
        response_id: str,
        output: list[dict[str, object]],
        status: str = "completed",
    ) -> None:
        conn.response_id = None
        response = {"id": response_id, "status": status, "output": output}
        await self._send(conn, {"type": "response.done", "response": response})

    async def _say_response(self, conn: _Conn, text: str, metadata: object) -> None:
        response_id = await self._open(conn, metadata)
        item = await self._speak(conn, response_id, text)
        await self._done(conn, response_id, [item])

    async def _play(self, conn: _Conn, turns: list[AgentTurn]) -> None:
        conn.playing = turns
        response_id = await self._open(conn)
        output: list[dict[str, object]] = []
        for turn in turns:
            for step in turn.agent:
                if isinstance(step, SayStep):
                    text = render_reply(step.say, self._last_result)
                    output.append(await self._speak(conn, response_id, text))
                elif isinstance(step, ToolStep):
                    output.append(await self._call_tool(conn, response_id, step))
                    conn.continue_turn = asyncio.get_running_loop().create_future()
                    await self._done(conn, response_id, output)
                    # The client's function_call_output, then its response.create.
                    await conn.continue_turn
                    conn.continue_turn = None
                    response_id = await self._open(conn)
                    output = []
        conn.playing = []
        await self._done(conn, response_id, output)

    async def _speak(self, conn: _Conn, response_id: str, text: str) -> dict[str, object]:
        item_id = f"item_{next(self._ids)}"
        conn.item_audio_ms[item_id] = 0
        item = {
            "id": item_id,
            "type": "message",
            "role": "assistant",
            "status": "in_progress",
            "content": [],
        }
        ref = {
            "response_id": response_id,
            "item_id": item_id,
            "output_index": 0,
            "content_index": 0,
        }
        added = {"type": "response.output_item.added", "response_id": response_id, "item": item}
        await self._send(conn, added)
        pcm = synthesize_speech(text, rate=OPENAI_RATE, pitch_hz=_PITCH_HZ)
        chunk = OPENAI_RATE * 2 * self.chunk_ms // 1000
        words = text.split()
        chunks = max(1, -(-len(pcm) // chunk))
        said = 0
        for n, start in enumerate(range(0, len(pcm), chunk)):
            # Text tokens run ahead of the audio: the whole transcript is out by half-way.
            upto = min(len(words), -(-(n + 1) * 2 * len(words) // chunks))
            for word in words[said:upto]:
                kind = "response.output_audio_transcript.delta"
                await self._send(conn, {"type": kind, **ref, "delta": word + " "})
            said = upto
            piece = pcm[start : start + chunk]
            audio = base64.b64encode(piece).decode()
            await self._send(conn, {"type": "response.output_audio.delta", **ref, "delta": audio})
            conn.item_audio_ms[item_id] += len(piece) * 1000 // (OPENAI_RATE * 2)
            await asyncio.sleep(self.chunk_ms / 1000 * self.pace)
        await self._send(conn, {"type": "response.output_audio.done", **ref})
        transcript = {"type": "response.output_audio_transcript.done", **ref, "transcript": text}
        await self._send(conn, transcript)
        content = [{"type": "output_audio", "transcript": text}]
        done = {**item, "status": "completed", "content": content}
        finished = {"type": "response.output_item.done", "response_id": response_id, "item": done}
        await self._send(conn, finished)
        return done

    async def _call_tool(self, conn: _Conn, response_id: str, step: ToolStep) -> dict[str, object]:
        call_id = f"call_{next(self._ids)}"
        item_id = f"item_{next(self._ids)}"
        arguments = json.dumps(step.args)
        item = {
            "id": item_id,
            "type": "function_call",
            "call_id": call_id,
            "name": step.tool,
            "arguments": arguments,
        }
        added = {"type": "response.output_item.added", "response_id": response_id, "item": item}
        await self._send(conn, added)
        # No `name` here, as some servers send it: only the output item names the function.
        await self._send(
            conn,
            {
                "type": "response.function_call_arguments.done",
                "response_id": response_id,
                "item_id": item_id,
                "output_index": 0,
                "call_id": call_id,
                "arguments": arguments,
            },
        )
        done = {**item, "status": "completed"}
        await self._send(
            conn, {"type": "response.output_item.done", "response_id": response_id, "item": done}
        )
        return done

    async def _cancel(self, conn: _Conn) -> None:
        response_id = conn.response_id
        task, conn.response_task = conn.response_task, None
        conn.playing = []  # cancelled on purpose: a model drops the rest of this reply too
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        if response_id is not None:
            output: list[dict[str, object]] = []
            if self.call_on_cancel is not None:
                # Events already in flight when the cancel landed: a function call of the cut response.
                output.append(await self._call_tool(conn, response_id, ToolStep(tool=self.call_on_cancel)))
            await self._done(conn, response_id, output, status="cancelled")

    # --- faults -----------------------------------------------------------------------------

    def _take(
        self, *, after_caller_line: int | None = None, on_connection: int | None = None
    ) -> list[Fault]:
        due = [
            f
            for f in self.faults
            if (after_caller_line is not None and f.after_caller_line == after_caller_line)
            or (on_connection is not None and f.on_connection == on_connection)
        ]
        for fault in due:
            self.faults.remove(fault)
        return due

    async def _inject(self, conn: _Conn, fault: Fault) -> None:
        if fault.action == "drop":
            # Abrupt, like a network failure: no close frame.
            transport = conn.request.transport
            if transport is not None:
                transport.abort()
            await conn.ws.close()
        elif fault.action == "malformed":
            for _ in range(fault.count):
                await conn.ws.send_str("{this is not json")
        elif fault.action == "quota":
            await self._error(
                conn,
                "insufficient_quota",
                "You exceeded your current quota.",
                kind="insufficient_quota",
            )
        elif fault.action == "quota_response":
            response_id = await self._open(conn)
            error = {"type": "insufficient_quota", "code": "insufficient_quota", "message": "quota"}
            conn.response_id = None
            await self._send(
                conn,
                {
                    "type": "response.done",
                    "response": {
                        "id": response_id,
                        "status": "failed",
                        "status_details": {"type": "failed", "error": error},
                        "output": [],
                    },
                },
            )
        elif fault.action == "rate_limit":
            await self._error(
                conn, "rate_limit_exceeded", "Rate limit reached.", kind="rate_limit_exceeded"
            )
            await conn.ws.close(code=1013)
