"""A fake Gemini Live server: a real TLS WebSocket on 127.0.0.1 speaking the BidiGenerateContent shapes.

google-genai always connects with TLS, so the fake serves a self-signed certificate (`tests/fakes/tls.py`) that
only the test's client context trusts. It answers `setup` with `setupComplete`, and then plays the model's side
of a call script (`fixtures/calls/*.yaml`) the way the scripted brain does: a VAD listens to the caller's
`realtimeInput` audio (as Gemini's automatic activity detection would); each caller utterance it hears is sent
back as `inputTranscription` with the script's next caller line, and the script's next agent turns follow —
24 kHz synthesized speech in `modelTurn` parts with its `outputTranscription`, `toolCall`s that wait for their
`toolResponse`, `generationComplete` and `turnComplete`. The first agent turn waits for the client's first text
turn (the adapter's nudge on entering a state), and a text turn asking to "Say exactly ..." is spoken verbatim.
If the caller makes any sound (a cough of 40 ms is enough) while the model's audio would still be playing, it
sends `interrupted` and drops the rest of that turn — only while server activity handling is on (no `activityHandling: NO_INTERRUPTION` in the setup).
After each turn it issues a session-resumption handle; the script's progress lives in the fake, not in a
connection, so a resumed connection carries on where the last one stopped.

`generation` picks the model's rules, and the fake says no where that model says no:
- "2.5": client content at any time, the deprecated `mediaChunks` and a null resumption handle accepted.
- "3.1": client content only as initial history, and only with `historyConfig.initialHistoryInClientContent`
  in the setup, before any realtime input; anything else closes the socket with 1007 ("Request contains an
  invalid argument"), as do `mediaChunks` and `sessionResumption.handle: null`. Text goes in `realtimeInput.text`.
- "3.8": as 3.1, except that client content is accepted all session, and with `turnComplete` it cuts off the
  model's reply at once (`interrupted`), whatever the activity handling. Functions are NON_BLOCKING unless
  declared otherwise; tool responses are recorded with their `scheduling`.

Faults (`GeminiFaults`): refuse a connection with HTTP 503, close one with a quota error after setup, and,
after model turn N, drop the socket without a close frame, send a malformed frame, or send `goAway`.

    async with FakeGeminiLive(script, tls=tls) as fake:
        record = await run_scripted_call(script, brain_factory=lambda start: fake.brain())
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field, replace
from itertools import count
from types import TracebackType
from typing import Literal, TypeAlias

from aiohttp import WSMsgType, web
from google import genai

from orchestrator.audio.synth import synthesize_speech
from orchestrator.audio.vad import make_vad
from orchestrator.brains.gemini import (
    GEMINI_INPUT_RATE,
    GEMINI_OUTPUT_RATE,
    GeminiLiveBrain,
    GeminiLiveConfig,
    make_client,
)
from orchestrator.brains.scripted import render_reply
from orchestrator.script import AgentTurn, CallerTurn, CallScript, SayStep, ToolStep
from tests.fakes.tls import LoopbackTls

__all__ = [
    "API_KEY",
    "ConnectionLog",
    "FakeGeminiLive",
    "GENERATIONS",
    "GeminiFaults",
    "Generation",
    "MODELS",
]

Generation: TypeAlias = Literal["2.5", "3.1", "3.8"]
GENERATIONS: tuple[Generation, ...] = ("2.5", "3.1", "3.8")
# The model name a brain asks for in each mode (so the adapter picks that model's capability row).
MODELS: dict[Generation, str] = {
    "2.5": "gemini-2.5-flash-native-audio-preview-12-2025",
    "3.1": "gemini-3.1-flash-live-preview",
    "3.8": "gemini-3.8-live",
}
API_KEY = "gemini-test-key"
_INVALID = b"Request contains an invalid argument."
_PATH = "/ws/google.ai.generativelanguage.{version}.GenerativeService.BidiGenerateContent"
_PITCH_HZ = 120.0
_CHUNK_MS = 100
_VERBATIM = re.compile(r"Say exactly this[^:]*:\s*\"(.*)\"\s*$", re.DOTALL)
_QUOTA_REASON = "RESOURCE_EXHAUSTED: You exceeded your current quota."


@dataclass(frozen=True, slots=True, kw_only=True)
class GeminiFaults:
    """What goes wrong, and when. Connections are numbered from 1; model turns count from 1 across them."""

    refuse_connections: frozenset[int] = frozenset()  # HTTP 503 instead of the upgrade
    quota_connections: frozenset[int] = frozenset()  # close 1011 RESOURCE_EXHAUSTED right after setup
    drop_after_turn: int | None = None  # cut the socket without a close frame
    malformed_after_turn: int | None = None  # a frame that is not JSON
    go_away_after_turn: int | None = None
    go_away_time_left_s: float = 3.0
    resumption: bool = True  # send sessionResumptionUpdate handles


@dataclass(slots=True, kw_only=True)
class ConnectionLog:
    """What one client connection sent and how it went."""

    number: int
    setup: dict[str, object] = field(default_factory=dict)
    resumed_with: str | None = None
    audio_bytes: int = 0
    text_turns: list[str] = field(default_factory=list)  # every text the model got, either channel
    client_texts: list[str] = field(default_factory=list)  # of those, sent as client content
    realtime_texts: list[str] = field(default_factory=list)  # of those, sent as realtimeInput.text
    seeded: list[dict[str, object]] = field(default_factory=list)  # initial history turns
    context_updates: list[dict[str, object]] = field(default_factory=list)
    tool_responses: list[dict[str, object]] = field(default_factory=list)
    ended: str = "open"


def _b64decode(text: str) -> bytes:
    """The SDK sends URL-safe base64 without padding; other clients send the standard alphabet."""
    return base64.urlsafe_b64decode(text.replace("+", "-").replace("/", "_") + "=" * (-len(text) % 4))


def _pick(data: Mapping[str, object], camel: str, snake: str) -> object:
    """The SDK writes some keys camelCase and some snake_case: accept both, as the real server does."""
    return data.get(camel, data.get(snake))


class FakeGeminiLive:
    """Serves the Live endpoint on a loopback port; `config()` points a GeminiLiveConfig at it."""

    def __init__(
        self,
        script: CallScript,
        *,
        tls: LoopbackTls,
        faults: GeminiFaults | None = None,
        api_version: str = "v1beta",
        generation: Generation = "2.5",
    ) -> None:
        self.script = script
        self.tls = tls
        self.faults = faults or GeminiFaults()
        self.generation = generation
        self.server_barge_in = True  # this connection's activity handling: set from each setup
        self.connections: list[ConnectionLog] = []
        self.turns_done = 0
        self.interruptions = 0
        self._api_version = api_version
        self._runner: web.AppRunner | None = None
        self._port = 0
        self._ws: web.WebSocketResponse | None = None
        self._request: web.Request | None = None
        self._live = asyncio.Event()
        self._vad = make_vad("webrtc", rate=GEMINI_INPUT_RATE)  # turn-taking: the caller's utterances
        # Activity that cuts the model off (START_OF_ACTIVITY_INTERRUPTS): any caller sound, a cough included.
        self._activity = make_vad("webrtc", rate=GEMINI_INPUT_RATE, min_speech_ms=40, min_silence_ms=100)
        self._caller_lines = [t.caller for t in script.turns if isinstance(t, CallerTurn)]
        self._agent_turns: dict[int, list[AgentTurn]] = {}
        heard_before = 0
        for turn in script.turns:
            if isinstance(turn, CallerTurn):
                heard_before += 1
            elif isinstance(turn, AgentTurn):
                self._agent_turns.setdefault(heard_before, []).append(turn)
        self._heard = 0
        self._played: set[int] = set()
        self._last_result: Mapping[str, object] = {}
        self._pending: dict[str, asyncio.Future[Mapping[str, object]]] = {}
        self._turn_task: asyncio.Task[None] | None = None
        self._side_tasks: set[asyncio.Task[None]] = set()
        self._speaking_until = 0.0
        self._handles: set[str] = set()
        self._seeding = False  # the setup asked for initial history and it has not ended yet
        self._ids = count(1)
        self._client: genai.Client | None = None

    # --- lifecycle --------------------------------------------------------------------------

    async def __aenter__(self) -> FakeGeminiLive:
        app = web.Application()
        app.router.add_get(_PATH.format(version=self._api_version), self._serve)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.tls.server)
        await site.start()
        self._port = self._runner.addresses[0][1]
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._client is not None:
            await self._client.aio.aclose()
            self._client.close()
        for task in [self._turn_task, *self._side_tasks]:
            if task is not None:
                task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self._port}"

    def config(self, **overrides: object) -> GeminiLiveConfig:
        """A brain configuration for this fake (short timeouts: loopback answers at once)."""
        config = GeminiLiveConfig(
            api_key=API_KEY,
            model=MODELS[self.generation],
            base_url=self.base_url,
            ssl_context=self.tls.client,
            connect_timeout_s=5.0,
        )
        return replace(config, **overrides)

    def brain(self, **overrides: object) -> GeminiLiveBrain:
        """A brain for one call against this fake, sharing one client (built once: it blocks ~0.1 s)."""
        if self._client is None:
            self._client = make_client(self.config())
        return GeminiLiveBrain(self.config(**overrides), client=self._client)

    # --- one connection ---------------------------------------------------------------------

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        record = ConnectionLog(number=len(self.connections) + 1)
        self.connections.append(record)
        if record.number in self.faults.refuse_connections:
            record.ended = "refused"
            return web.Response(status=503, text="The service is currently unavailable.")
        ws = web.WebSocketResponse(max_msg_size=4 * 1024 * 1024)
        await ws.prepare(request)
        if request.headers.get("x-goog-api-key") != API_KEY:
            record.ended = "bad key"
            await ws.close(code=1008, message=b"API key not valid. Please pass a valid API key.")
            return ws
        first = await ws.receive(timeout=10)
        setup = json.loads(first.data).get("setup", {}) if first.type == WSMsgType.TEXT else {}
        record.setup = setup
        resumption = _pick(setup, "sessionResumption", "session_resumption")
        handle = _pick(resumption, "handle", "handle") if isinstance(resumption, dict) else None
        record.resumed_with = handle if isinstance(handle, str) else None
        if self._strict and isinstance(resumption, dict) and "handle" in resumption and handle is None:
            return await self._refuse(ws, record, "null resumption handle")
        if record.resumed_with is not None and record.resumed_with not in self._handles:
            record.ended = "bad handle"
            await ws.close(code=1008, message=b"Invalid session resumption handle.")
            return ws
        if record.number in self.faults.quota_connections:
            record.ended = "quota"
            await ws.close(code=1011, message=_QUOTA_REASON.encode())
            return ws
        self.server_barge_in = _activity_handling(setup) != "NO_INTERRUPTION"
        self._seeding = _initial_history(setup)
        previous = self._ws
        self._ws, self._request = ws, request
        if previous is not None and not previous.closed:
            await previous.close(code=1000, message=b"replaced")
        await ws.send_json({"setupComplete": {}})
        self._live.set()
        try:
            async for message in ws:
                if message.type != WSMsgType.TEXT:
                    continue
                refusal = self._on_client_message(record, json.loads(message.data))
                if refusal is not None:
                    return await self._refuse(ws, record, refusal)
        finally:
            if record.ended == "open":
                record.ended = "closed"
            if self._ws is ws:
                self._ws = None
                self._live.clear()
        return ws

    @property
    def _strict(self) -> bool:
        return self.generation != "2.5"

    async def _refuse(
        self, ws: web.WebSocketResponse, record: ConnectionLog, why: str
    ) -> web.WebSocketResponse:
        """What Gemini 3.x does with a message it does not take: close the session, 1007."""
        record.ended = f"1007 {why}"
        await ws.close(code=1007, message=_INVALID)
        return ws

    def _on_client_message(self, record: ConnectionLog, data: Mapping[str, object]) -> str | None:
        """Act on one client message; return why the session must close (3.x rules), or None."""
        realtime = _pick(data, "realtimeInput", "realtime_input")
        if isinstance(realtime, dict):
            chunks = _pick(realtime, "mediaChunks", "media_chunks")
            if chunks is not None and self._strict:
                return "deprecated mediaChunks"
            self._seeding = False  # the realtime conversation has begun: history is closed
            blobs = [realtime.get("audio"), *(chunks if isinstance(chunks, list) else [])]
            for audio in blobs:
                if isinstance(audio, dict) and isinstance(audio.get("data"), str):
                    pcm = _b64decode(audio["data"])
                    record.audio_bytes += len(pcm)
                    self._hear(pcm)
            if isinstance(realtime.get("text"), str):
                record.realtime_texts.append(realtime["text"])
                self._on_text(record, realtime["text"])
        content = _pick(data, "clientContent", "client_content")
        if isinstance(content, dict):
            return self._on_client_content(record, content)
        update = _pick(data, "contextUpdate", "context_update")
        if isinstance(update, dict):
            record.context_updates.append(update)
        response = _pick(data, "toolResponse", "tool_response")
        if isinstance(response, dict):
            self._on_tool_response(record, response)
        return None

    def _on_client_content(self, record: ConnectionLog, content: Mapping[str, object]) -> str | None:
        turns = content.get("turns")
        complete = bool(_pick(content, "turnComplete", "turn_complete"))
        if self._seeding:
            # Initial history (history_config on): taken into context, no model call, until turn_complete.
            if isinstance(turns, list):
                record.seeded.extend(t for t in turns if isinstance(t, dict))
            self._seeding = not complete
            return None
        if self.generation == "3.1":
            return "client content after the initial history"
        texts: list[str] = []
        for turn in turns if isinstance(turns, list) else []:
            for part in turn.get("parts", []) if isinstance(turn, dict) else []:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    texts.append(part["text"])
        text = "\n".join(texts)
        record.client_texts.append(text)
        if not complete:
            record.text_turns.append(text)
            return None
        if self.generation == "3.8" and self._speaking():
            self._interrupted()  # 3.8: turn_complete cuts the model off whatever the activity handling
        self._on_text(record, text)
        return None

    def _on_text(self, record: ConnectionLog, text: str) -> None:
        """A complete text turn from the client (client content or realtime text)."""
        record.text_turns.append(text)
        verbatim = _VERBATIM.search(text)
        if verbatim is not None:
            self._spawn(self._say_verbatim(verbatim.group(1)))
        elif self._heard not in self._played:
            self._begin_turn(self._heard)  # the nudge that makes the model open the conversation

    def _on_tool_response(self, record: ConnectionLog, response: Mapping[str, object]) -> None:
        functions = _pick(response, "functionResponses", "function_responses")
        for item in functions if isinstance(functions, list) else []:
            if not isinstance(item, dict):
                continue
            record.tool_responses.append(item)  # with its `scheduling`, when the client set one
            waiting = self._pending.pop(str(item.get("id")), None)
            result = item.get("response")
            if waiting is not None and not waiting.done():
                waiting.set_result(result if isinstance(result, dict) else {})

    # --- the model --------------------------------------------------------------------------

    def _speaking(self) -> bool:
        return asyncio.get_running_loop().time() < self._speaking_until

    def _hear(self, pcm: bytes) -> None:
        for event in self._activity.feed(pcm):
            if event.kind == "speech_started" and self._speaking() and self.server_barge_in:
                self._interrupted()
        for event in self._vad.feed(pcm):
            if event.kind == "speech_stopped":
                self._on_caller_utterance()

    def _interrupted(self) -> None:
        self.interruptions += 1
        self._speaking_until = 0.0
        if self._turn_task is not None:
            self._turn_task.cancel()
            self._turn_task = None
        self._spawn(self._send({"serverContent": {"interrupted": True}}))

    def _on_caller_utterance(self) -> None:
        if self._heard >= len(self._caller_lines):
            return
        line = self._caller_lines[self._heard]
        self._heard += 1
        self._spawn(self._send({"serverContent": {"inputTranscription": {"text": line}}}))
        self._begin_turn(self._heard)

    def _begin_turn(self, heard: int) -> None:
        turns = self._agent_turns.get(heard)
        if not turns or heard in self._played:
            return
        self._played.add(heard)
        previous = self._turn_task
        if previous is not None and self.server_barge_in:
            previous.cancel()
            previous = None
        # With NO_INTERRUPTION the model finishes its reply before it answers what the caller said over it.
        self._turn_task = asyncio.get_running_loop().create_task(self._play(turns, after=previous))

    async def _play(self, turns: list[AgentTurn], after: asyncio.Task[None] | None = None) -> None:
        if after is not None:
            await asyncio.wait({after})
        for turn in turns:
            for step in turn.agent:
                if isinstance(step, SayStep):
                    await self._speak(render_reply(step.say, self._last_result))
                elif isinstance(step, ToolStep):
                    self._last_result = await self._call_tool(step)
        await self._finish_turn()

    async def _say_verbatim(self, text: str) -> None:
        await self._speak(text)
        await self._finish_turn()

    async def _call_tool(self, step: ToolStep) -> Mapping[str, object]:
        call_id = f"function-call-{next(self._ids)}"
        waiting = asyncio.get_running_loop().create_future()
        self._pending[call_id] = waiting
        call = {"id": call_id, "name": step.tool, "args": dict(step.args)}
        await self._send({"toolCall": {"functionCalls": [call]}})
        async with asyncio.timeout(30):
            return await waiting

    async def _speak(self, text: str) -> None:
        pcm = synthesize_speech(text, rate=GEMINI_OUTPUT_RATE, pitch_hz=_PITCH_HZ)
        loop = asyncio.get_running_loop()
        duration = len(pcm) / (2 * GEMINI_OUTPUT_RATE)
        self._speaking_until = max(self._speaking_until, loop.time()) + duration
        chunk = GEMINI_OUTPUT_RATE * 2 * _CHUNK_MS // 1000
        for index, start in enumerate(range(0, len(pcm), chunk)):
            blob = {
                "mimeType": f"audio/pcm;rate={GEMINI_OUTPUT_RATE}",
                "data": base64.b64encode(pcm[start : start + chunk]).decode("ascii"),
            }
            content: dict[str, object] = {"modelTurn": {"parts": [{"inlineData": blob}]}}
            if index == 0:
                content["outputTranscription"] = {"text": text}
            await self._send({"serverContent": content})

    async def _finish_turn(self) -> None:
        await self._send({"serverContent": {"generationComplete": True}})
        await self._send({"serverContent": {"turnComplete": True}})
        self.turns_done += 1
        turn = self.turns_done
        if self.faults.resumption:
            handle = f"handle-{turn}"
            self._handles.add(handle)
            await self._send({"sessionResumptionUpdate": {"newHandle": handle, "resumable": True}})
        if self.faults.drop_after_turn == turn:
            self._drop()
        if self.faults.malformed_after_turn == turn and self._ws is not None:
            await self._ws.send_str("{this is not json")
        if self.faults.go_away_after_turn == turn:
            left = self.faults.go_away_time_left_s
            await self._send({"goAway": {"timeLeft": f"{left:g}s"}})
            ws = self._ws
            if ws is not None:
                self._spawn(self._expire(ws, left))

    def _drop(self) -> None:
        """Cut the TCP connection under the WebSocket: the client sees 1006, no close frame."""
        if self._request is not None and self._request.transport is not None:
            self._request.transport.abort()
        if self.connections:
            self.connections[-1].ended = "dropped"

    async def _expire(self, ws: web.WebSocketResponse, after_s: float) -> None:
        await asyncio.sleep(after_s)
        if not ws.closed:
            await ws.close(code=1001, message=b"session expired")

    async def _send(self, message: Mapping[str, object]) -> None:
        # Across a reconnect, the model's output waits for the resumed connection, as Gemini's would.
        async with asyncio.timeout(10):
            await self._live.wait()
        ws = self._ws
        if ws is not None and not ws.closed:
            with contextlib.suppress(ConnectionError):  # a dropped socket: the next connection resumes
                await ws.send_json(message)

    def _spawn(self, coro: Coroutine[object, object, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)


def _activity_handling(setup: Mapping[str, object]) -> object:
    config = _pick(setup, "realtimeInputConfig", "realtime_input_config")
    return _pick(config, "activityHandling", "activity_handling") if isinstance(config, dict) else None


def _initial_history(setup: Mapping[str, object]) -> bool:
    config = _pick(setup, "historyConfig", "history_config")
    if not isinstance(config, dict):
        return False
    return bool(_pick(config, "initialHistoryInClientContent", "initial_history_in_client_content"))
