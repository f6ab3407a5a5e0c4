"""The OpenAI Realtime brain: one call's conversation over OpenAI's Realtime WebSocket (GA).

Layer: a brain adapter. It knows the Brain protocol (`brains/base.py`), the audio edge
(`audio/resample.py`) and OpenAI's wire; nothing of flows, sessions or Sautikit.

    config = OpenAIRealtimeConfig.from_env()          # OPENAI_API_KEY, or ConfigError naming it
    brain = OpenAIRealtimeBrain(config)

What it does with the socket:

- audio: caller PCM at the call's rate -> 24 kHz `input_audio_buffer.append`; model audio
  (`response.output_audio.delta`, 24 kHz) -> the call's rate, one streaming resampler per item;
- states: `enter_state` sends `session.update` whose instructions are the system prompt plus the
  state's instructions, and whose tools are only the state's allowed tools (the `context_update`
  strategy of the model's row in `brains/capabilities.py`; while reconnecting, the new connection's
  setup carries it: `reconnect`), and reports it as a `StateDelivered` event;
- tools: `response.function_call_arguments.done` (its `name` may be missing: the output item's
  `response.output_item.added/done` carries it) -> ToolCall, held until its response is done: a call
  from a response cancelled by a barge-in never runs; `tool_result` -> a `function_call_output` item,
  then `response.create` once no other call of that response is open;
- `say`: a `response.create` asking for the text verbatim, tagged with the utterance id;
- barge-in: `interrupt(heard)` cancels the active response and truncates the played item at
  `heard.played_ms`; the server's own `input_audio_buffer.speech_started` mutes the response;
- one `response.create` in flight at a time: the API refuses a second while a response is active,
  so requests queue until `response.done`;
- failures: a refused connect, a dropped socket, repeated malformed messages and retryable `error`
  events (rate limits, server errors) reconnect once, re-sending `session.update` and a short
  summary of the call; anything else (a spent budget, a bad key, no quota) becomes BrainFailure,
  the flow's `brain_failed` route.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import os
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal, TypeAlias
from urllib.parse import urlencode

import aiohttp
import structlog
from pydantic import BaseModel, ConfigDict, ValidationError

from orchestrator.audio.resample import Resampler
from orchestrator.brains.base import (
    AgentAudio,
    AgentUtteranceEnd,
    BrainEvent,
    BrainFailure,
    BrainReconnected,
    CallInfo,
    Heard,
    JSONValue,
    Keypad,
    ModelInterrupted,
    Speech,
    StateBrief,
    StateDelivered,
    ToolCall,
    ToolDeclaration,
    TurnComplete,
    language_instruction,
)
from orchestrator.brains.capabilities import capabilities_for
from orchestrator.errors import BrainError, ConfigError

__all__ = ["OPENAI_RATE", "OpenAIRealtimeBrain", "OpenAIRealtimeConfig", "OpenAIRealtimeError"]

log = structlog.get_logger(__name__)

OPENAI_RATE = 24000  # the Realtime API's pcm16 rate, both ways
_BYTES_PER_MS = OPENAI_RATE * 2 // 1000
_VOICES = frozenset(
    {"alloy", "ash", "ballad", "cedar", "coral", "echo", "marin", "sage", "shimmer", "verse"}
)
# `error` codes/types that no reconnection can fix: the call must take its brain_failed route now.
_FATAL_ERRORS = frozenset(
    {
        "insufficient_quota",
        "invalid_api_key",
        "account_deactivated",
        "billing_hard_limit_reached",
        "model_not_found",
        "authentication_error",
        "permission_denied",
    }
)
# `error` codes/types a fresh connection may get past.
_RETRYABLE_ERRORS = frozenset(
    {"rate_limit_exceeded", "server_error", "internal_error", "session_expired", "overloaded"}
)
_ACTIVE_RESPONSE = "conversation_already_has_active_response"
_SUMMARY_HEAD = (
    "The connection to you was restarted in the middle of this phone call. Carry on from where the "
    "conversation stopped, without greeting the caller again. The call so far:\n"
)

TurnDetection: TypeAlias = Literal["server_vad", "semantic_vad"]


class OpenAIRealtimeError(BrainError):
    """An OpenAI Realtime connection failed; `retryable` says whether a new connection may help."""

    def __init__(self, reason: str, *, retryable: bool) -> None:
        self.reason = reason
        self.retryable = retryable
        super().__init__(reason)


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenAIRealtimeConfig:
    """How to reach the Realtime API and how the model should behave on a call.

    `voice=None` uses the flow's voice when it names an OpenAI voice, else "marin".
    `speak_first` has the model open the conversation in the call's first state.
    `server_barge_in` (off by default) lets the server's VAD cut the model off. Off, the session's own
    two-step barge-in decides: "mhmm" and coughs do not interrupt, and `interruptible: false` states are
    honoured; the server still transcribes and answers the caller's turns.
    """

    api_key: str = field(repr=False)
    model: str = "gpt-realtime"
    voice: str | None = None
    url: str = "wss://api.openai.com/v1/realtime"
    turn_detection: TurnDetection = "server_vad"
    server_barge_in: bool = False
    speak_first: bool = True
    transcription_model: str = "gpt-4o-mini-transcribe"
    connect_timeout_s: float = 10.0
    send_timeout_s: float = 5.0
    close_timeout_s: float = 2.0
    heartbeat_s: float | None = 20.0
    max_reconnects: int = 1
    max_malformed: int = 3
    summary_chars: int = 2000

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] = os.environ, **overrides: object
    ) -> OpenAIRealtimeConfig:
        """Read OPENAI_API_KEY (and optional OPENAI_REALTIME_MODEL, _VOICE, _URL); overrides win."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ConfigError(f"unknown OpenAI Realtime setting(s): {', '.join(unknown)}")
        api_key = overrides.pop("api_key", None) or environ.get("OPENAI_API_KEY", "").strip()
        if not isinstance(api_key, str) or not api_key:
            raise ConfigError(
                "OPENAI_API_KEY is not set: export it (or pass api_key=) to use the OpenAI "
                "Realtime brain"
            )
        config = cls(api_key=api_key)
        from_environ = {
            "model": environ.get("OPENAI_REALTIME_MODEL"),
            "voice": environ.get("OPENAI_REALTIME_VOICE"),
            "url": environ.get("OPENAI_REALTIME_URL"),
        }
        # Any: the values are only checked after replace() below (turn_detection and friends).
        changes: dict[str, Any] = {k: v for k, v in from_environ.items() if v}
        changes.update(overrides)
        config = replace(config, **changes)
        if config.turn_detection not in ("server_vad", "semantic_vad"):
            raise ConfigError(
                "turn_detection must be 'server_vad' or 'semantic_vad', "
                f"got {config.turn_detection!r}"
            )
        return config

    def endpoint(self) -> str:
        """The WebSocket URL with the model as its query (the key goes in a header, never here)."""
        joiner = "&" if "?" in self.url else "?"
        return f"{self.url}{joiner}{urlencode({'model': self.model})}"


# --- server events, validated at the edge -------------------------------------------------------


class _Event(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _ErrorBody(_Event):
    type: str | None = None
    code: str | None = None
    message: str | None = None


class _ErrorEvent(_Event):
    error: _ErrorBody


class _ResponseRef(_Event):
    id: str
    status: str | None = None
    metadata: dict[str, str] | None = None


class _ResponseCreated(_Event):
    response: _ResponseRef


class _AudioDelta(_Event):
    response_id: str
    item_id: str
    delta: str


class _ItemRef(_Event):
    response_id: str
    item_id: str


class _TranscriptDelta(_Event):
    response_id: str
    item_id: str
    delta: str


class _TranscriptDone(_Event):
    response_id: str
    item_id: str
    transcript: str


class _FunctionCallDone(_Event):
    response_id: str
    call_id: str
    item_id: str | None = None
    name: str | None = None  # not always sent: the output item names the function
    arguments: str


class _FunctionItem(_Event):
    id: str | None = None
    type: str
    call_id: str | None = None
    name: str | None = None


class _ItemEvent(_Event):
    item: _FunctionItem


class _StatusDetails(_Event):
    type: str | None = None
    reason: str | None = None
    error: _ErrorBody | None = None


class _OutputItem(_Event):
    type: str


class _DoneResponse(_Event):
    id: str
    status: str
    status_details: _StatusDetails | None = None
    output: list[_OutputItem] = []


class _ResponseDone(_Event):
    response: _DoneResponse


class _InputTranscript(_Event):
    item_id: str | None = None
    transcript: str


class _Malformed(Exception):
    """A server message we cannot read."""


@dataclass(frozen=True, slots=True, kw_only=True)
class _Stop:
    """Why a connection ended, and whether another connection may help."""

    reason: str
    retryable: bool


# --- one connection ------------------------------------------------------------------------------


class _Link:
    """One WebSocket connection: its socket, its single writer's outbox, what was made on it."""

    __slots__ = ("call_ids", "items", "outbox", "ws")

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.outbox: asyncio.Queue[str] = asyncio.Queue()
        self.call_ids: set[str] = set()  # function calls made on this connection
        self.items: set[str] = set()  # output items (truncatable) made on this connection

    def send(self, payload: Mapping[str, object]) -> None:
        self.outbox.put_nowait(json.dumps(payload, ensure_ascii=False))


class OpenAIRealtimeBrain:
    """A Brain backed by an OpenAI Realtime session over its WebSocket.

    Usage::

        brain = OpenAIRealtimeBrain(OpenAIRealtimeConfig.from_env())
        await brain.start(call_info)      # connects; never raises (failure: a BrainFailure event)
        async for event in brain.events(): ...

    `http` lets the caller share an aiohttp session; otherwise the brain owns one for the call.
    """

    def __init__(
        self, config: OpenAIRealtimeConfig, *, http: aiohttp.ClientSession | None = None
    ) -> None:
        self._config = config
        self._http = http
        self._owns_http = http is None
        self._events: asyncio.Queue[BrainEvent | None] = asyncio.Queue()
        self._call: CallInfo | None = None
        self._state: StateBrief | None = None
        self._link: _Link | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._up: Resampler | None = None
        self._down: dict[str, Resampler] = {}
        self._reconnects = 0
        self._malformed = 0
        self._failed = False
        self._closed = False
        # Responses: one response.create in flight at a time (the API refuses more).
        self._active_response: str | None = None
        self._awaiting_created = False
        self._pending_creates: deque[dict[str, object]] = deque()
        self._last_create: dict[str, object] | None = None
        self._say_responses: dict[str, str] = {}  # response id -> the session's utterance id
        self._response_calls: dict[str, set[str]] = {}  # response id -> outstanding call ids
        self._muted: set[str] = set()  # responses whose audio must not reach the caller
        # Output items: what was sent of each, for truncation at the played position.
        self._utterance_of: dict[str, str] = {}  # item id -> utterance id
        self._item_of: dict[str, str] = {}  # utterance id -> item id
        self._item_ms: dict[str, float] = {}
        self._open_items: dict[str, str] = {}  # item id -> response id, audio still flowing
        # Transcript deltas of items whose transcript is not done: a cut item never gets its `done`.
        self._partial: dict[str, tuple[str, list[str]]] = {}  # item id -> (response id, parts)
        self._history: deque[str] = deque(maxlen=64)
        # Function calls: names from their output items, and calls held until their response is done.
        self._function_names: dict[str, str] = {}  # call id or item id -> function name
        self._held_calls: dict[str, list[ToolCall]] = {}  # response id -> calls not yet run
        capabilities_for("openai", config.model)  # logs a model the table does not know

    # --- Brain ------------------------------------------------------------------------------

    async def start(self, call: CallInfo) -> None:
        self._call = call
        self._up = Resampler(call.sample_rate, OPENAI_RATE)
        if self._http is None:
            self._http = aiohttp.ClientSession()
        link = await self._connect_with_retry()
        if link is None:
            return
        self._supervisor = asyncio.get_running_loop().create_task(self._supervise(link))

    async def push_audio(self, pcm: bytes) -> None:
        link, up = self._link, self._up
        if link is None or up is None or self._failed:
            return  # reconnecting or failed: this audio has no session to go to
        pcm24 = up.process(pcm)
        if pcm24:
            # base64 needs no JSON escaping: skip json.dumps on the per-frame path.
            audio = base64.b64encode(pcm24).decode("ascii")
            link.outbox.put_nowait('{"type":"input_audio_buffer.append","audio":"' + audio + '"}')

    async def enter_state(self, state: StateBrief) -> None:
        previous, self._state = self._state, state
        if self._link is not None:
            self._link.send(self._state_update())
        # Between connections, the next connection's session.update carries the state.
        via = "context_update" if self._link is not None else "reconnect"
        self._emit(StateDelivered(state=state.name, via=via))
        # The model only speaks when asked: it opens the conversation in the first state, and a
        # state entered again (a silence reprompt) means "ask again". Other entries come with a
        # tool result, which asks for the reply itself.
        if (previous is None and self._config.speak_first) or (
            previous is not None and previous.name == state.name
        ):
            self._request_response({})

    async def say(self, text: str, *, utterance_id: str) -> None:
        prompt = (
            "Say exactly the following words, verbatim, in your usual voice, and nothing else: "
            + json.dumps(text, ensure_ascii=False)
        )
        metadata = {"utterance_id": utterance_id}
        self._request_response(
            {"instructions": prompt, "tool_choice": "none", "metadata": metadata}
        )

    async def tool_result(self, call: ToolCall, result: Mapping[str, JSONValue]) -> None:
        output = json.dumps(dict(result), ensure_ascii=False, sort_keys=True)
        self._remember(f"Tool {call.name} returned: {output}")
        link = self._link
        if link is None:
            # Reconnecting: the summary will carry the result; the model speaks after it.
            self._request_response({})
            return
        if call.call_id in link.call_ids:
            item: dict[str, object] = {
                "type": "function_call_output",
                "call_id": call.call_id,
                "output": output,
            }
        else:
            # The call was made on a connection that is gone: the new session has no such call.
            item = _system_message(f"Result of the {call.name} tool you called earlier: {output}")
        link.send({"type": "conversation.item.create", "item": item})
        outstanding = [calls for calls in self._response_calls.values() if call.call_id in calls]
        for calls in outstanding:
            calls.discard(call.call_id)
        if any(calls for calls in outstanding):
            return  # the model asked for several tools: answer them all before it speaks
        self._request_response({})

    async def keypad(self, keys: Keypad) -> None:
        """Typed keys reach the model as the caller's own words: "[caller pressed 1 0 4 2 #]"."""
        self._remember(f"Caller: {keys.text}")
        link = self._link
        if link is not None:
            item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": keys.text}]}
            link.send({"type": "conversation.item.create", "item": item})
        self._request_response({})

    async def interrupt(self, heard: Heard | None) -> None:
        link = self._link
        if link is None:
            return
        if self._active_response is not None:
            link.send({"type": "response.cancel", "response_id": self._active_response})
            self._mute(self._active_response)
        if heard is None:
            return
        item_id = self._item_of.get(heard.utterance_id)
        if item_id is None or item_id not in link.items:
            return
        # The server rejects a position past the audio it generated.
        played = max(0, min(heard.played_ms, int(self._item_ms.get(item_id, 0.0))))
        link.send(
            {
                "type": "conversation.item.truncate",
                "item_id": item_id,
                "content_index": 0,
                "audio_end_ms": played,
            }
        )
        log.info("openai_truncated", item_id=item_id, audio_end_ms=played)

    def events(self) -> AsyncIterator[BrainEvent]:
        return self._drain()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        await self._drop_link()
        if self._owns_http and self._http is not None:
            await self._http.close()
        self._events.put_nowait(None)

    # --- connections ------------------------------------------------------------------------

    async def _connect_with_retry(self) -> _Link | None:
        while True:
            try:
                link = await self._connect()
            except OpenAIRealtimeError as exc:
                if exc.retryable and self._reconnects < self._config.max_reconnects:
                    self._reconnects += 1
                    log.warning("openai_connect_retry", reason=exc.reason)
                    continue
                self._fail(exc.reason)
                return None
            self._link = link
            return link

    async def _connect(self) -> _Link:
        assert self._http is not None, "start() first"
        assert self._call is not None, "start() first"
        config = self._config
        try:
            async with asyncio.timeout(config.connect_timeout_s):
                ws = await self._http.ws_connect(
                    config.endpoint(),
                    headers={"Authorization": f"Bearer {config.api_key}"},
                    heartbeat=config.heartbeat_s,
                    timeout=aiohttp.ClientWSTimeout(ws_close=config.close_timeout_s),
                    autoping=True,
                )
        except aiohttp.WSServerHandshakeError as exc:
            retryable = exc.status not in (401, 403, 404)
            raise OpenAIRealtimeError(
                f"OpenAI Realtime refused the connection (HTTP {exc.status})", retryable=retryable
            ) from exc
        except TimeoutError as exc:
            raise OpenAIRealtimeError(
                f"no connection to OpenAI Realtime within {config.connect_timeout_s} s",
                retryable=True,
            ) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise OpenAIRealtimeError(
                f"cannot connect to OpenAI Realtime: {exc.__class__.__name__}", retryable=True
            ) from exc
        link = _Link(ws)
        link.send(self._full_update())
        log.info("openai_connected", model=config.model, reconnects=self._reconnects)
        return link

    async def _supervise(self, link: _Link) -> None:
        try:
            await self._run_links(link)
        except Exception as exc:  # an adapter bug must reach the flow as brain_failed, not vanish
            log.exception("openai_adapter_crashed")
            self._fail(f"OpenAI Realtime adapter crashed: {exc!r}")

    async def _run_links(self, link: _Link) -> None:
        """Run connections one after another until the brain closes or fails."""
        while True:
            async with asyncio.TaskGroup() as tasks:
                writer = tasks.create_task(self._write(link))
                stop = await self._read(link)
                writer.cancel()
            await self._drop_link()
            if self._closed or self._failed:
                return
            log.warning("openai_connection_lost", reason=stop.reason, retryable=stop.retryable)
            if not stop.retryable or self._reconnects >= self._config.max_reconnects:
                self._fail(stop.reason)
                return
            self._reconnects += 1
            owed = self._forget_connection()
            new_link = await self._connect_with_retry()
            if new_link is None:
                return
            link = new_link
            self._resume(link, owed=owed)
            self._events.put_nowait(BrainReconnected())

    async def _write(self, link: _Link) -> None:
        """The socket's one writer; a stalled or failed send closes the socket (ends the reader)."""
        timeout = self._config.send_timeout_s
        while True:
            text = await link.outbox.get()
            try:
                async with asyncio.timeout(timeout):
                    await link.ws.send_str(text)
            except (TimeoutError, ConnectionError, aiohttp.ClientError) as exc:
                log.warning("openai_send_failed", error=exc.__class__.__name__)
                await self._abort(link.ws)
                return

    async def _read(self, link: _Link) -> _Stop:
        async for message in link.ws:
            if message.type is aiohttp.WSMsgType.TEXT:
                stop = self._on_text(link, message.data)
            else:
                stop = self._malformed_message("non-text frame")
            if stop is not None:
                await self._abort(link.ws)
                return stop
        code = link.ws.close_code
        return _Stop(reason=f"OpenAI Realtime connection closed (code {code})", retryable=True)

    async def _abort(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        with contextlib.suppress(TimeoutError, ConnectionError, aiohttp.ClientError):
            async with asyncio.timeout(self._config.close_timeout_s):
                await ws.close()

    async def _drop_link(self) -> None:
        link, self._link = self._link, None
        if link is not None and not link.ws.closed:
            await self._abort(link.ws)

    def _forget_connection(self) -> bool:
        """Clear per-connection state after a drop; True if the model still owed a reply."""
        owed = self._active_response is not None or self._awaiting_created
        for response_id in list(self._held_calls):
            self._release_calls(response_id, run=False)  # the new session knows none of these calls
        if self._history and self._history[-1].startswith("Caller:"):
            owed = True
        for item_id in list(self._open_items):
            self._end_item(item_id)
        self._flush_partial(None)
        if self._last_create is not None and self._awaiting_created:
            self._pending_creates.appendleft(self._last_create)
        self._active_response = None
        self._awaiting_created = False
        self._last_create = None
        self._malformed = 0
        if self._up is not None:
            self._up.flush()
        return owed and not self._pending_creates

    def _resume(self, link: _Link, *, owed: bool) -> None:
        """A new connection: the state's instructions and tools, a call summary, the reply owed."""
        link.send(self._state_update())
        summary = self._summary()
        if summary:
            link.send({"type": "conversation.item.create", "item": _system_message(summary)})
        if owed:
            self._pending_creates.append({})
        self._pump_creates()

    # --- session configuration --------------------------------------------------------------

    def _full_update(self) -> dict[str, object]:
        assert self._call is not None
        config = self._config
        voice = config.voice or (self._call.voice if self._call.voice in _VOICES else "marin")
        session = self._state_session()
        session["model"] = config.model
        session["output_modalities"] = ["audio"]
        session["audio"] = {
            "input": {
                "format": {"type": "audio/pcm", "rate": OPENAI_RATE},
                "transcription": self._transcription(),
                "turn_detection": {
                    "type": config.turn_detection,
                    "create_response": True,
                    "interrupt_response": config.server_barge_in,
                },
            },
            "output": {"format": {"type": "audio/pcm", "rate": OPENAI_RATE}, "voice": voice},
        }
        return {"type": "session.update", "session": session}

    def _transcription(self) -> dict[str, object]:
        """The input transcription model, told the language unless the caller may switch (then it detects)."""
        assert self._call is not None
        transcription: dict[str, object] = {"model": self._config.transcription_model}
        if len(self._call.languages) < 2:
            transcription["language"] = self._call.language.split("-")[0].lower()
        return transcription

    def _state_update(self) -> dict[str, object]:
        return {"type": "session.update", "session": self._state_session()}

    def _state_session(self) -> dict[str, object]:
        assert self._call is not None
        call, state = self._call, self._state
        instructions = call.system_prompt.strip()
        if call.language:
            instructions += f"\n\n{language_instruction(call)}"
        declared: tuple[ToolDeclaration, ...] = call.tools
        if state is not None:
            if state.instructions:
                step = state.instructions.strip()
                instructions += f"\n\nWhat to do now (step '{state.name}'):\n{step}"
            allowed = set(state.tools)
            declared = tuple(t for t in call.tools if t.name in allowed)
        tools: list[dict[str, object]] = [
            {
                "type": "function",
                "name": t.name,
                "description": t.description,
                "parameters": dict(t.parameters),
            }
            for t in declared
        ]
        return {
            "type": "realtime",
            "instructions": instructions,
            "tools": tools,
            "tool_choice": "auto" if tools else "none",
        }

    # --- responses --------------------------------------------------------------------------

    def _request_response(self, response: dict[str, object]) -> None:
        self._pending_creates.append(response)
        self._pump_creates()

    def _pump_creates(self) -> None:
        link = self._link
        if link is None or self._active_response is not None or self._awaiting_created:
            return
        if not self._pending_creates:
            return
        body = self._pending_creates.popleft()
        self._last_create = body
        self._awaiting_created = True
        payload: dict[str, object] = {"type": "response.create"}
        if body:
            payload["response"] = body
        link.send(payload)

    def _mute(self, response_id: str) -> None:
        self._muted.add(response_id)
        for item_id, owner in list(self._open_items.items()):
            if owner == response_id:
                self._end_item(item_id)

    def _end_item(self, item_id: str) -> None:
        """No more audio of this item reaches the caller; the resampler tail plays unless muted."""
        response_id = self._open_items.pop(item_id, None)
        resampler = self._down.pop(item_id, None)
        utterance_id = self._utterance_of.get(item_id, item_id)
        if resampler is not None:
            tail = resampler.flush()
            if tail and response_id not in self._muted:
                self._emit(AgentAudio(pcm=tail, utterance_id=utterance_id))
        if response_id is not None:
            self._emit(AgentUtteranceEnd(utterance_id=utterance_id))

    # --- server events ----------------------------------------------------------------------

    def _on_text(self, link: _Link, data: str) -> _Stop | None:
        try:
            message = json.loads(data)
        except ValueError:
            return self._malformed_message("not JSON")
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            return self._malformed_message("no event type")
        kind: str = message["type"]
        handler = _HANDLERS.get(kind)
        if handler is None:
            return None  # session.created, rate_limits.updated, deltas we do not need, ...
        try:
            return handler(self, link, message)
        except (ValidationError, _Malformed) as exc:
            return self._malformed_message(f"{kind}: {exc.__class__.__name__}")

    def _malformed_message(self, what: str) -> _Stop | None:
        self._malformed += 1
        log.warning("openai_malformed_message", what=what, count=self._malformed)
        if self._malformed >= self._config.max_malformed:
            return _Stop(
                reason=f"{self._malformed} malformed messages from OpenAI Realtime", retryable=True
            )
        return None

    def _on_error(self, link: _Link, message: dict[str, object]) -> _Stop | None:
        error = _ErrorEvent.model_validate(message).error
        return self._classify(error, where="error event")

    def _classify(self, error: _ErrorBody, *, where: str) -> _Stop | None:
        names = {n for n in (error.code, error.type) if n}
        label = error.code or error.type or "unknown"
        log.warning("openai_error", code=error.code, type=error.type, where=where)
        if names & _FATAL_ERRORS:
            return _Stop(reason=f"OpenAI Realtime error: {label}", retryable=False)
        if names & _RETRYABLE_ERRORS:
            return _Stop(reason=f"OpenAI Realtime error: {label}", retryable=True)
        if _ACTIVE_RESPONSE in names and self._awaiting_created and self._last_create is not None:
            # Our response.create raced one the server's VAD started: send it again after that one.
            self._pending_creates.appendleft(self._last_create)
            self._awaiting_created = False
            self._last_create = None
        return None  # a refused request (a late cancel, a stale truncate): the call goes on

    def _on_response_created(self, link: _Link, message: dict[str, object]) -> None:
        response = _ResponseCreated.model_validate(message).response
        self._active_response = response.id
        self._response_calls[response.id] = set()
        if self._awaiting_created:
            self._awaiting_created = False
            self._last_create = None
        utterance_id = (response.metadata or {}).get("utterance_id")
        if utterance_id:
            self._say_responses[response.id] = utterance_id

    def _on_audio_delta(self, link: _Link, message: dict[str, object]) -> None:
        event = _AudioDelta.model_validate(message)
        try:
            pcm = base64.b64decode(event.delta, validate=True)
        except binascii.Error as exc:
            raise _Malformed("audio delta is not base64") from exc
        item_id, response_id = event.item_id, event.response_id
        if item_id not in self._item_ms:
            utterance_id = self._say_responses.get(response_id, item_id)
            self._utterance_of[item_id] = utterance_id
            self._item_of[utterance_id] = item_id
            self._item_ms[item_id] = 0.0
            self._open_items[item_id] = response_id
            link.items.add(item_id)
            assert self._call is not None
            self._down[item_id] = Resampler(OPENAI_RATE, self._call.sample_rate)
        self._item_ms[item_id] += len(pcm) / _BYTES_PER_MS
        resampler = self._down.get(item_id)
        if resampler is None or response_id in self._muted:
            return
        out = resampler.process(pcm)
        if out:
            self._emit(AgentAudio(pcm=out, utterance_id=self._utterance_of[item_id]))

    def _on_audio_done(self, link: _Link, message: dict[str, object]) -> None:
        event = _ItemRef.model_validate(message)
        self._end_item(event.item_id)

    def _on_transcript_delta(self, link: _Link, message: dict[str, object]) -> None:
        event = _TranscriptDelta.model_validate(message)
        self._partial.setdefault(event.item_id, (event.response_id, []))[1].append(event.delta)

    def _on_transcript_done(self, link: _Link, message: dict[str, object]) -> None:
        event = _TranscriptDone.model_validate(message)
        self._partial.pop(event.item_id, None)
        self._say_text(event.item_id, event.response_id, event.transcript)

    def _say_text(self, item_id: str, response_id: str, text: str) -> None:
        text = " ".join(text.split())
        if not text:
            return
        fallback = self._say_responses.get(response_id, item_id)
        utterance_id = self._utterance_of.get(item_id, fallback)
        self._remember(f"Agent: {text}")
        self._emit(Speech(role="agent", text=text, utterance_id=utterance_id))

    def _flush_partial(self, response_id: str | None) -> None:
        """Report what was generated of items cut before their transcript was done."""
        for item_id, (owner, parts) in list(self._partial.items()):
            if response_id is None or owner == response_id:
                del self._partial[item_id]
                self._say_text(item_id, owner, "".join(parts))

    def _on_output_item(self, link: _Link, message: dict[str, object]) -> None:
        item = _ItemEvent.model_validate(message).item
        if item.type != "function_call" or not item.name:
            return
        for key in (item.call_id, item.id):
            if key:
                self._function_names[key] = item.name

    def _on_function_call(self, link: _Link, message: dict[str, object]) -> None:
        event = _FunctionCallDone.model_validate(message)
        name = (
            event.name
            or self._function_names.get(event.call_id)
            or (self._function_names.get(event.item_id) if event.item_id else None)
        )
        if not name:
            raise _Malformed("function call without a name, and no output item naming it")
        try:
            arguments = json.loads(event.arguments) if event.arguments.strip() else {}
        except ValueError as exc:
            raise _Malformed("function call arguments are not JSON") from exc
        if not isinstance(arguments, dict):
            raise _Malformed("function call arguments are not an object")
        link.call_ids.add(event.call_id)
        self._response_calls.setdefault(event.response_id, set()).add(event.call_id)
        # Run only once the response is done and was not cancelled: a barge-in may still cancel it.
        call = ToolCall(call_id=event.call_id, name=name, arguments=arguments)
        self._held_calls.setdefault(event.response_id, []).append(call)

    def _release_calls(self, response_id: str, *, run: bool) -> None:
        """The response is done: run its calls, or forget them if it was cancelled or cut off."""
        calls = self._held_calls.pop(response_id, [])
        outstanding = self._response_calls.get(response_id, set())
        for call in calls:
            self._function_names.pop(call.call_id, None)
            if run:
                arguments = json.dumps(dict(call.arguments), sort_keys=True)
                self._remember(f"Agent called {call.name} with {arguments}")
                self._emit(call)
            else:
                outstanding.discard(call.call_id)
                log.info("openai_tool_call_dropped", name=call.name, response_id=response_id)

    def _on_response_done(self, link: _Link, message: dict[str, object]) -> _Stop | None:
        response = _ResponseDone.model_validate(message).response
        if self._active_response == response.id:
            self._active_response = None
        cut = response.status != "completed" or response.id in self._muted
        self._release_calls(response.id, run=not cut)
        for item_id, owner in list(self._open_items.items()):
            if owner == response.id:
                self._end_item(item_id)
        self._flush_partial(response.id)
        was_say = self._say_responses.pop(response.id, None) is not None
        self._muted.discard(response.id)
        stop: _Stop | None = None
        if response.status == "failed":
            details = response.status_details
            error = details.error if details is not None and details.error is not None else None
            if error is not None:
                stop = self._classify(error, where="response.done")
        elif (
            response.status == "completed"
            and not was_say
            and not any(item.type == "function_call" for item in response.output)
        ):
            self._emit(TurnComplete())
        if not self._response_calls.get(response.id):
            self._response_calls.pop(response.id, None)
        if stop is None:
            self._pump_creates()
        return stop

    def _on_speech_started(self, link: _Link, message: dict[str, object]) -> None:
        # The server heard the caller over the model: the rest of this response goes nowhere.
        if (
            self._active_response is not None
            and self._config.server_barge_in
            and any(owner == self._active_response for owner in self._open_items.values())
        ):
            self._mute(self._active_response)
            # Audio of this response already handed to the session must not play either.
            self._emit(ModelInterrupted())

    def _on_input_transcript(self, link: _Link, message: dict[str, object]) -> None:
        text = _InputTranscript.model_validate(message).transcript.strip()
        if text:
            self._remember(f"Caller: {text}")
            self._emit(Speech(role="caller", text=text))

    # --- bookkeeping ------------------------------------------------------------------------

    def _remember(self, line: str) -> None:
        self._history.append(line)

    def _summary(self) -> str:
        budget = self._config.summary_chars
        lines: list[str] = []
        for line in reversed(self._history):
            if budget - len(line) < 0:
                break
            budget -= len(line) + 1
            lines.append(line)
        if not lines:
            return ""
        return _SUMMARY_HEAD + "\n".join(reversed(lines))

    def _emit(self, event: BrainEvent) -> None:
        if not self._closed:
            self._events.put_nowait(event)

    def _fail(self, reason: str) -> None:
        if self._failed or self._closed:
            return
        self._failed = True
        log.error("openai_failed", reason=reason)
        self._emit(BrainFailure(reason=reason))

    async def _drain(self) -> AsyncIterator[BrainEvent]:
        while True:
            event = await self._events.get()
            if event is None:
                return
            yield event

    def __repr__(self) -> str:
        return f"OpenAIRealtimeBrain(model={self._config.model!r}, url={self._config.url!r})"


def _system_message(text: str) -> dict[str, object]:
    return {
        "type": "message",
        "role": "system",
        "content": [{"type": "input_text", "text": text}],
    }


_Handler: TypeAlias = Callable[[OpenAIRealtimeBrain, _Link, dict[str, object]], "_Stop | None"]

_HANDLERS: dict[str, _Handler] = {
    "error": OpenAIRealtimeBrain._on_error,
    "response.created": OpenAIRealtimeBrain._on_response_created,
    "response.output_audio.delta": OpenAIRealtimeBrain._on_audio_delta,
    # Beta names too (`response.audio.*`): older models and some compatible servers still send them.
    "response.audio.delta": OpenAIRealtimeBrain._on_audio_delta,
    "response.output_audio.done": OpenAIRealtimeBrain._on_audio_done,
    "response.audio.done": OpenAIRealtimeBrain._on_audio_done,
    "response.output_audio_transcript.delta": OpenAIRealtimeBrain._on_transcript_delta,
    "response.audio_transcript.delta": OpenAIRealtimeBrain._on_transcript_delta,
    "response.output_audio_transcript.done": OpenAIRealtimeBrain._on_transcript_done,
    "response.audio_transcript.done": OpenAIRealtimeBrain._on_transcript_done,
    "response.function_call_arguments.done": OpenAIRealtimeBrain._on_function_call,
    "response.output_item.added": OpenAIRealtimeBrain._on_output_item,
    "response.output_item.done": OpenAIRealtimeBrain._on_output_item,
    "response.done": OpenAIRealtimeBrain._on_response_done,
    "input_audio_buffer.speech_started": OpenAIRealtimeBrain._on_speech_started,
    "conversation.item.input_audio_transcription.completed": (
        OpenAIRealtimeBrain._on_input_transcript
    ),
}
