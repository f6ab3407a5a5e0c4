"""The Gemini Live brain: one call's conversation with a Gemini Live session (google-genai, `v1beta`).

    config = GeminiLiveConfig.from_env()          # GEMINI_API_KEY or GOOGLE_API_KEY
    brain = GeminiLiveBrain(config)               # one per call; the call session drives it

Caller audio goes in at 16 kHz (resampled from the call's rate if it differs) as `realtime_input.audio`; the
model's 24 kHz speech comes back resampled to the call's rate. Tool calls become `ToolCall` events and their
results go back with `send_tool_response` (with a `scheduling` where the model calls functions asynchronously).

Every wire rule that differs between Live models is keyed on the model's row in `brains/capabilities.py`: how
mid-call text goes (client content on 2.5; `realtime_input.text` on 3.x, which closes the socket with 1007 on
late client content), whether history is seeded with `history_config`, sync or async function calling, and how
a state change reaches the model — the answer to the tool call that caused it, a text turn, or a reconnect
resumed with the handle whose setup carries the new instructions. Each entered state is reported as a
`StateDelivered` event naming the strategy used. The server's own barge-in is switched off
(`activity_handling=NO_INTERRUPTION`) unless `server_barge_in` is set: the session's two-step barge-in and the
flow's `interruptible` decide what cuts the agent off, as on every brain.

One task owns the connection. It reconnects with the session-resumption handle when the server sends
`go_away` (at the next turn boundary, or just before the deadline), and once after a failure (connect error,
dropped socket, malformed message, quota); a second failure in a row becomes a `BrainFailure` event — the
flow's `brain_failed` route. google-genai and websockets errors are translated here (`failure_reason`) and
never leave `events()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import ssl
from collections import deque
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field, replace
from itertools import count
from typing import TypedDict

import pydantic
import structlog
import websockets
from google import genai
from google.genai import errors as genai_errors
from google.genai import live as genai_live
from google.genai import types
from typing_extensions import Unpack

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
from orchestrator.brains.capabilities import (
    Delivery,
    ModelCapabilities,
    capabilities_for,
    choose_delivery,
)
from orchestrator.errors import ConfigError

__all__ = [
    "DEFAULT_MODEL",
    "GEMINI_INPUT_RATE",
    "GEMINI_OUTPUT_RATE",
    "PREBUILT_VOICES",
    "GeminiLiveBrain",
    "GeminiLiveConfig",
    "failure_reason",
    "make_client",
    "say_verbatim_prompt",
]

log = structlog.get_logger(__name__)

# The stable Live model Google's docs name as the default (2026-09); override with GEMINI_LIVE_MODEL.
DEFAULT_MODEL = "gemini-3.8-live"
GEMINI_INPUT_RATE = 16000
GEMINI_OUTPUT_RATE = 24000
# Gemini's prebuilt voices: a flow's voice is passed on only when it is one of these.
PREBUILT_VOICES = frozenset(
    {
        "Achernar", "Achird", "Algenib", "Algieba", "Alnilam", "Aoede", "Autonoe", "Callirrhoe",
        "Charon", "Despina", "Enceladus", "Erinome", "Fenrir", "Gacrux", "Iapetus", "Kore",
        "Laomedeia", "Leda", "Orus", "Puck", "Pulcherrima", "Rasalgethi", "Sadachbia", "Sadaltager",
        "Schedar", "Sulafat", "Umbriel", "Vindemiatrix", "Zephyr", "Zubenelgenubi",
    }
)  # fmt: skip
_VOICES_BY_LOWER = {name.lower(): name for name in PREBUILT_VOICES}
_TIME_LEFT = re.compile(r"^\s*(\d+(?:\.\d*)?)s\s*$")
_RATE = re.compile(r"rate=(\d+)")
_QUOTA_WORDS = ("quota", "resource_exhausted", "rate limit")
_SAY_PREFIX = "Say exactly this, word for word, and nothing else:"


class _Overrides(TypedDict, total=False):
    api_key: str
    model: str
    voice: str | None
    language: str | None
    base_url: str | None
    api_version: str
    ssl_context: ssl.SSLContext | None
    connect_timeout_s: float
    send_timeout_s: float
    close_timeout_s: float
    say_timeout_s: float
    reconnects: int
    go_away_margin_s: float
    context_updates: bool | None
    server_barge_in: bool
    capabilities: ModelCapabilities | None
    audio_backlog_ms: int
    history_lines: int


@dataclass(frozen=True, slots=True, kw_only=True)
class GeminiLiveConfig:
    """How to reach Gemini Live and how to behave on it.

    `voice` and `language` override the flow's; `None` takes the flow's voice when it names a Gemini
    prebuilt voice, and sets no `language_code` (native-audio models pick the language themselves; the flow's
    language is written into the system instruction instead).
    """

    api_key: str = field(repr=False)
    model: str = DEFAULT_MODEL
    voice: str | None = None
    language: str | None = None
    base_url: str | None = None  # None: Google's endpoint; tests point it at a loopback fake
    api_version: str = "v1beta"  # the Gemini API serves Live only on v1beta
    ssl_context: ssl.SSLContext | None = field(default=None, repr=False)
    connect_timeout_s: float = 10.0
    send_timeout_s: float = 5.0
    close_timeout_s: float = 3.0
    say_timeout_s: float = 5.0  # say() returns once the model starts speaking the text, or after this
    reconnects: int = 1  # reconnections allowed after a failure before the call escalates
    go_away_margin_s: float = 1.0  # move to a new connection this long before go_away's deadline
    context_updates: bool | None = None  # send_context_update on each state change; None: per capability row
    server_barge_in: bool = False  # True: Gemini's own VAD cuts the model off (START_OF_ACTIVITY_INTERRUPTS)
    capabilities: ModelCapabilities | None = None  # None: the row for `model` in brains/capabilities.py
    audio_backlog_ms: int = 2000  # caller audio kept while reconnecting
    history_lines: int = 12  # lines of conversation replayed into a fresh (unresumable) session

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] = os.environ, **overrides: Unpack[_Overrides]
    ) -> GeminiLiveConfig:
        """Read GEMINI_API_KEY (or GOOGLE_API_KEY), GEMINI_LIVE_MODEL, GEMINI_LIVE_VOICE,
        GEMINI_LIVE_LANGUAGE and GEMINI_BASE_URL; keyword overrides win."""
        key = (
            overrides.get("api_key")
            or environ.get("GEMINI_API_KEY")
            or environ.get("GOOGLE_API_KEY")
        )
        if not key:
            raise ConfigError(
                "GEMINI_API_KEY is not set (nor GOOGLE_API_KEY): the Gemini Live brain needs an API key "
                "from https://aistudio.google.com/apikey"
            )
        config = cls(
            api_key=key,
            model=environ.get("GEMINI_LIVE_MODEL") or DEFAULT_MODEL,
            voice=environ.get("GEMINI_LIVE_VOICE") or None,
            language=environ.get("GEMINI_LIVE_LANGUAGE") or None,
            base_url=environ.get("GEMINI_BASE_URL") or None,
        )
        return replace(config, **overrides)


# --- what the adapter sends, queued for the connection's one writer --------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class _AudioOut:
    pcm: bytes  # 16 kHz S16LE


@dataclass(frozen=True, slots=True, kw_only=True)
class _TextTurn:
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class _SeedHistory:
    """A fresh session's first message: the conversation so far, as client content (history_config on)."""

    turns: tuple[tuple[str, str], ...]  # (role "user" | "model", text)


@dataclass(frozen=True, slots=True, kw_only=True)
class _ContextUpdate:
    instruction: str
    tools: tuple[ToolDeclaration, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class _ToolResponse:
    call_id: str
    name: str
    response: dict[str, JSONValue]


_Outbound = _AudioOut | _TextTurn | _SeedHistory | _ContextUpdate | _ToolResponse


class _Utterance:
    """The model's current stretch of speech: one utterance id, one resampler, its transcription."""

    __slots__ = ("id", "resampler", "text")

    def __init__(self, utterance_id: str, resampler: Resampler) -> None:
        self.id = utterance_id
        self.resampler = resampler
        self.text: list[str] = []


class _MoveOn(Exception):
    """go_away: leave this connection for a resumed one."""


def say_verbatim_prompt(text: str) -> str:
    """The text turn that asks the model to speak a state's `say` word for word."""
    return f'{_SAY_PREFIX} "{text}"'


def failure_reason(exc: BaseException) -> str:
    """What went wrong, in words for the transcript: every google-genai/websockets failure maps here."""
    if isinstance(exc, TimeoutError):
        return "Gemini Live did not answer in time"
    if isinstance(exc, genai_errors.APIError):
        detail = str(exc.message or exc.details or exc.status or "")[:160]
        if exc.code == 429 or _mentions_quota(detail):
            return f"Gemini Live quota exceeded ({exc.code}: {detail})"
        return f"Gemini Live closed the session ({exc.code}: {detail})"
    if isinstance(exc, websockets.InvalidStatus):
        status = exc.response.status_code
        if status == 429:
            return "Gemini Live quota exceeded (HTTP 429)"
        return f"Gemini Live refused the connection (HTTP {status})"
    if isinstance(exc, websockets.ConnectionClosed):
        code = exc.rcvd.code if exc.rcvd else 1006
        return f"connection to Gemini Live lost ({code})"
    if isinstance(exc, websockets.WebSocketException):
        return f"WebSocket handshake with Gemini Live failed ({type(exc).__name__})"
    if isinstance(exc, ssl.SSLError):
        return f"TLS with Gemini Live failed ({getattr(exc, 'reason', None) or exc})"
    if isinstance(exc, OSError):
        return f"cannot reach Gemini Live ({exc.strerror or type(exc).__name__})"
    if isinstance(exc, pydantic.ValidationError | ValueError | TypeError | KeyError):
        # The SDK raises these for a message it cannot parse or map.
        return "malformed message from Gemini Live"
    return f"Gemini Live adapter error ({type(exc).__name__})"


def _mentions_quota(text: str) -> bool:
    lowered = text.lower()
    return any(word in lowered for word in _QUOTA_WORDS)


def make_client(config: GeminiLiveConfig) -> genai.Client:
    """A google-genai client for `config`. Blocking (it loads CA certificates, ~0.1 s): build one at
    start-up and share it between calls' brains, or let each brain build its own in a worker thread."""
    options = types.HttpOptions(
        api_version=config.api_version,
        base_url=config.base_url,
        async_client_args={"ssl": config.ssl_context} if config.ssl_context is not None else None,
    )
    return genai.Client(api_key=config.api_key, http_options=options)


def _json_args(args: Mapping[str, object] | None) -> dict[str, JSONValue]:
    if not args:
        return {}
    cleaned = json.loads(json.dumps(dict(args), default=str))
    return cleaned if isinstance(cleaned, dict) else {}


def _declarations(
    tools: tuple[ToolDeclaration, ...], behavior: types.Behavior | None = None
) -> list[types.ToolUnion]:
    if not tools:
        return []
    return [
        types.Tool(
            function_declarations=[
                types.FunctionDeclaration(
                    name=tool.name,
                    description=tool.description,
                    parameters_json_schema=dict(tool.parameters),
                    behavior=behavior,
                )
                for tool in tools
            ]
        )
    ]


class GeminiLiveBrain:
    """A Brain backed by a Gemini Live session; one instance per call.

        config = GeminiLiveConfig.from_env(voice="Kore")
        client = make_client(config)  # once, at start-up
        brain = GeminiLiveBrain(config, client=client)

    A shared `client` stays open when the brain closes; without one, the brain builds (and closes) its own.
    """

    def __init__(self, config: GeminiLiveConfig, *, client: genai.Client | None = None) -> None:
        self._config = config
        self._shared_client = client
        caps = config.capabilities or capabilities_for("gemini", config.model)
        self._caps = caps
        self._text_channel: Delivery = next(
            (d for d in caps.delivery if d in ("client_content", "realtime_text")), "realtime_text"
        )
        self._context_updates = (
            config.context_updates
            if config.context_updates is not None
            else caps.instructions_mid_session
        )
        # Async rows: declare functions NON_BLOCKING (only where the row is known to take it) and answer with a
        # scheduling, which a blocking call's answer ignores.
        asynchronous = caps.function_calling == "async"
        self._behavior = types.Behavior.NON_BLOCKING if asynchronous and caps.known else None
        self._scheduling = types.FunctionResponseScheduling.WHEN_IDLE if asynchronous else None
        self._events: asyncio.Queue[BrainEvent | None] = asyncio.Queue()
        self._outbox: deque[_Outbound] = deque()
        self._outbox_ready = asyncio.Event()
        self._audio_queued = 0
        self._call: CallInfo | None = None
        self._state: StateBrief | None = None
        self._client: genai.Client | None = None
        self._task: asyncio.Task[None] | None = None
        self._to_model: Resampler | None = None
        self._utterance: _Utterance | None = None
        self._muted = False  # after a local barge-in, until the model's interrupted turn is over
        self._say_ids: deque[str] = deque()
        self._say_started: dict[str, asyncio.Event] = {}
        self._pending_tools: dict[str, str] = {}  # call id -> tool name, asked and not yet answered
        self._orphaned_tools: set[str] = set()  # asked on a session that is gone and was not resumed
        self._cancelled_tools: set[str] = set()
        self._caller_text: list[str] = []
        self._history: deque[tuple[str, str]] = deque(maxlen=max(config.history_lines, 1))
        self._handle: str | None = None
        self._seeding = False  # this connection's setup asked for initial history in client content
        self._dropped: list[str] = []
        self._move_wanted = False  # reconnect at the next turn boundary (the `reconnect` delivery)
        self._move_now = asyncio.Event()
        self._resumed = False
        self._failed_over = False  # the next connection replaces one that failed
        self._progress = False
        self._go_away_at: float | None = None
        self._deadline: asyncio.Timeout | None = None
        self._ids = count(1)
        self._closed = False
        self._failed = False
        self._stop = asyncio.Event()

    @property
    def capabilities(self) -> ModelCapabilities:
        """The capability row this brain follows for its model."""
        return self._caps

    @property
    def resumable(self) -> bool:
        """True once the server has issued a session-resumption handle."""
        return self._handle is not None

    @property
    def dropped(self) -> tuple[str, ...]:
        """Why each connection that failed ended (recovered from or not), oldest first."""
        return tuple(self._dropped)

    # --- Brain ------------------------------------------------------------------------------

    async def start(self, call: CallInfo) -> None:
        self._call = call
        self._to_model = Resampler(call.sample_rate, GEMINI_INPUT_RATE)
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"gemini-{call.call_sid}"
        )

    async def push_audio(self, pcm: bytes) -> None:
        if self._closed or self._failed or self._to_model is None:
            return
        data = self._to_model.process(pcm)
        if not data:
            return
        self._queue(_AudioOut(pcm=data))
        self._audio_queued += len(data)
        # While reconnecting, keep only the most recent caller audio.
        limit = GEMINI_INPUT_RATE * 2 * self._config.audio_backlog_ms // 1000
        while self._audio_queued > limit and self._drop_oldest_audio():
            pass

    async def enter_state(self, state: StateBrief) -> None:
        self._state = state
        if self._closed or self._failed:
            return
        if self._context_updates:
            self._queue(
                _ContextUpdate(instruction=self._instruction(), tools=self._allowed_tools())
            )
        # The capability row decides: a tool call awaiting its answer carries the new state's instructions in
        # its result; otherwise a short text turn tells the model what to do now, or a resumed connection's
        # setup does.
        via = choose_delivery(self._caps, call_waiting=bool(self._pending_tools))
        if via == "reconnect":
            self._request_move()
        elif via != "tool_result":
            if not state.instructions:
                return  # nothing to say: the next setup carries the state's tools
            via = self._text_channel
            self._queue(
                _TextTurn(text=f"(The call is now at step '{state.name}'.) {state.instructions}")
            )
        self._events.put_nowait(StateDelivered(state=state.name, via=via))

    async def say(self, text: str, *, utterance_id: str) -> None:
        if self._closed or self._failed:
            return
        started = self._say_started[utterance_id] = asyncio.Event()
        self._say_ids.append(utterance_id)
        self._queue(_TextTurn(text=say_verbatim_prompt(text)))
        # The session may act right after a `say` (escalating waits for playback to finish): return only
        # once the model's audio for it is on its way, so that playback has begun.
        try:
            async with asyncio.timeout(self._config.say_timeout_s):
                await started.wait()
        except TimeoutError:
            log.warning("gemini_say_late", utterance_id=utterance_id)
        finally:
            self._say_started.pop(utterance_id, None)

    async def tool_result(self, call: ToolCall, result: Mapping[str, JSONValue]) -> None:
        self._pending_tools.pop(call.call_id, None)
        if self._closed or self._failed:
            return
        response: dict[str, JSONValue] = dict(result)
        if self._state is not None:
            response.setdefault("allowed_tools", list(self._state.tools))
        cancelled = call.call_id in self._cancelled_tools
        if cancelled or call.call_id in self._orphaned_tools:
            # The model withdrew the call, or the session that asked is gone for good: no response can go to
            # that id, yet the state it moved the call to must still reach the model, as text.
            self._cancelled_tools.discard(call.call_id)
            self._orphaned_tools.discard(call.call_id)
            self._queue(
                _TextTurn(text=f"Result of {call.name}: {json.dumps(response, sort_keys=True)}")
            )
            if cancelled and "instructions" in response and self._state is not None:
                self._events.put_nowait(StateDelivered(state=self._state.name, via=self._text_channel))
            return
        self._queue(_ToolResponse(call_id=call.call_id, name=call.name, response=response))

    async def keypad(self, keys: Keypad) -> None:
        """Typed keys reach the model as text on its text channel: "[caller pressed 1 0 4 2 #]"."""
        if not (self._closed or self._failed):
            self._queue(_TextTurn(text=keys.text))

    async def interrupt(self, heard: Heard | None) -> None:
        if self._utterance is None:
            return
        log.info(
            "gemini_barge_in",
            utterance_id=self._utterance.id,
            played_ms=heard.played_ms if heard else None,
            total_ms=heard.total_ms if heard else None,
        )
        # The rest of this model turn is stale: with server barge-in off (the default) the model finishes it
        # unheard; with it on, Gemini stops it too. Either way its end (turn_complete) unmutes.
        self._muted = True
        self._end_utterance(play_tail=False)

    async def events(self) -> AsyncIterator[BrainEvent]:
        while True:
            event = await self._events.get()
            if event is None:
                return
            yield event

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        task, self._task = self._task, None
        if task is not None:
            # The connection closes itself (close handshake while still reading); bounded either way.
            await asyncio.wait({task}, timeout=2 * self._config.close_timeout_s)
            if not task.done():
                task.cancel()
                await asyncio.wait({task}, timeout=self._config.close_timeout_s)
        client, self._client = self._client, None
        if client is not None and client is not self._shared_client:
            # Closing idle HTTP pools cannot fail the call; nothing to report if it goes wrong.
            with contextlib.suppress(Exception):
                async with asyncio.timeout(self._config.close_timeout_s):
                    await client.aio.aclose()
            client.close()
        self._events.put_nowait(None)

    # --- the connection ---------------------------------------------------------------------

    async def _run(self) -> None:
        failures = 0
        try:
            self._client = self._shared_client or await asyncio.to_thread(make_client, self._config)
        except Exception as exc:
            # A bad base_url or options: the call must hear an apology, not crash.
            self._fail(failure_reason(exc))
            return
        while not self._stop.is_set():
            try:
                await self._connection()
            except _MoveOn:
                failures = 0
                log.info("gemini_session_moved", resumable=self._handle is not None)
            except Exception as exc:  # translated at this one boundary; see failure_reason
                reason = failure_reason(exc)
                self._dropped.append(reason)
                failures = 1 if self._progress else failures + 1
                if failures > self._config.reconnects:
                    self._fail(reason)
                    return
                log.warning(
                    "gemini_reconnecting", reason=reason, resumable=self._handle is not None
                )
                self._failed_over = True

    async def _connection(self) -> None:
        """One WebSocket session: raises _MoveOn after go_away, or the failure that ended it."""
        assert self._client is not None
        self._progress = False
        self._go_away_at = None
        self._move_wanted = False
        self._move_now.clear()
        self._resumed = self._handle is not None
        self._seeding = (
            not self._resumed and bool(self._history) and self._caps.history_needs_config
        )
        config = self._live_config()
        async with contextlib.AsyncExitStack() as stack:
            async with asyncio.timeout(self._config.connect_timeout_s):
                session = await stack.enter_async_context(
                    self._client.aio.live.connect(model=self._config.model, config=config)
                )
            self._on_connected()
            loop = asyncio.get_running_loop()
            reader = loop.create_task(self._read(session))
            writer = loop.create_task(self._write(session))
            stopper = loop.create_task(self._stop.wait())
            mover = loop.create_task(self._move_now.wait())
            tasks = {reader, writer, stopper, mover}
            try:
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                if mover.done() and not stopper.done():
                    # A state change that only a new setup can carry: leave between turns, resumed.
                    with contextlib.suppress(Exception):
                        async with asyncio.timeout(self._config.close_timeout_s):
                            await session.close()
                    raise _MoveOn
                if stopper.done():
                    writer.cancel()
                    # Close while the reader still drains: a model streaming audio faster than real time
                    # would otherwise fill the socket and stall the close handshake. We are leaving:
                    # how the close went changes nothing.
                    with contextlib.suppress(Exception):
                        async with asyncio.timeout(self._config.close_timeout_s):
                            await session.close()
                    return
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            for task in (reader, writer):
                if not task.cancelled() and (exc := task.exception()) is not None:
                    raise exc

    def _on_connected(self) -> None:
        resumed = self._resumed
        log.info(
            "gemini_connected", model=self._config.model, row=self._caps.name, resumed=resumed
        )
        if self._failed_over:
            # Counted only after a failure: go_away moves and planned reconnects are not incidents.
            self._failed_over = False
            self._events.put_nowait(BrainReconnected(resumed=resumed))
        if resumed:
            return
        if self._seeding:
            # history_config is on: the server takes client content until its turn_complete, before anything.
            self._outbox.appendleft(_SeedHistory(turns=tuple(self._history)))
            self._outbox_ready.set()
        # A fresh session knows none of the old one's tool calls: answer those as text instead.
        self._orphaned_tools.update(self._pending_tools)
        for index, item in enumerate(self._outbox):
            if isinstance(item, _ToolResponse):
                self._orphaned_tools.discard(item.call_id)
                text = f"Result of {item.name}: {json.dumps(item.response, sort_keys=True)}"
                self._outbox[index] = _TextTurn(text=text)

    def _live_config(self) -> types.LiveConnectConfig:
        call = self._call
        assert call is not None
        voice = self._config.voice or _VOICES_BY_LOWER.get(call.voice.lower())
        speech = types.SpeechConfig(
            voice_config=(
                types.VoiceConfig(prebuilt_voice_config=types.PrebuiltVoiceConfig(voice_name=voice))
                if voice
                else None
            ),
            language_code=self._config.language,
        )
        barge_in_off = not self._config.server_barge_in and self._caps.server_interruption_off
        return types.LiveConnectConfig(
            response_modalities=[types.Modality.AUDIO],
            system_instruction=self._instruction(
                with_history=not self._resumed and not self._seeding
            ),
            tools=_declarations(call.tools, self._behavior) or None,
            speech_config=speech,
            input_audio_transcription=types.AudioTranscriptionConfig(),
            output_audio_transcription=types.AudioTranscriptionConfig(),
            # Only a handle the server issued: 3.x rejects an explicit null one.
            session_resumption=(
                types.SessionResumptionConfig(handle=self._handle)
                if self._handle
                else types.SessionResumptionConfig()
            ),
            realtime_input_config=(
                types.RealtimeInputConfig(activity_handling=types.ActivityHandling.NO_INTERRUPTION)
                if barge_in_off
                else None
            ),
            history_config=(
                types.HistoryConfig(initial_history_in_client_content=True)
                if self._seeding
                else None
            ),
            context_window_compression=types.ContextWindowCompressionConfig(
                sliding_window=types.SlidingWindow()
            ),
        )

    def _instruction(self, *, with_history: bool = False) -> str:
        call = self._call
        assert call is not None
        parts = [call.system_prompt.strip(), language_instruction(call)]
        state = self._state
        if state is not None:
            if state.instructions:
                parts.append(f"Current step ({state.name}): {state.instructions}")
            allowed = ", ".join(state.tools) if state.tools else "none"
            parts.append(f"Tools you may call now: {allowed}. Any other tool call is refused.")
        if with_history and self._history:
            lines = [f"{'Caller' if role == 'user' else 'Agent'}: {text}" for role, text in self._history]
            parts.append("The conversation so far:\n" + "\n".join(lines))
        return "\n\n".join(parts)

    def _allowed_tools(self) -> tuple[ToolDeclaration, ...]:
        if self._call is None or self._state is None:
            return ()
        allowed = set(self._state.tools)
        return tuple(t for t in self._call.tools if t.name in allowed)

    # --- writing: one writer per connection, fed from a queue that outlives it ----------------

    def _queue(self, item: _Outbound) -> None:
        self._outbox.append(item)
        self._outbox_ready.set()

    def _drop_oldest_audio(self) -> bool:
        for index, item in enumerate(self._outbox):
            if isinstance(item, _AudioOut):
                del self._outbox[index]
                self._audio_queued -= len(item.pcm)
                return True
        return False

    async def _write(self, session: genai_live.AsyncSession) -> None:
        while True:
            await self._outbox_ready.wait()
            while self._outbox:
                item = self._outbox[0]
                async with asyncio.timeout(self._config.send_timeout_s):
                    await self._send(session, item)
                # Removed only once sent: what a dropped socket swallowed goes out on the next one.
                if self._outbox and self._outbox[0] is item:
                    self._outbox.popleft()
                    if isinstance(item, _AudioOut):
                        self._audio_queued -= len(item.pcm)
            self._outbox_ready.clear()

    async def _send(self, session: genai_live.AsyncSession, item: _Outbound) -> None:
        if isinstance(item, _AudioOut):
            blob = types.Blob(data=item.pcm, mime_type=f"audio/pcm;rate={GEMINI_INPUT_RATE}")
            await session.send_realtime_input(audio=blob)
        elif isinstance(item, _TextTurn):
            if self._text_channel == "client_content":
                turn = types.Content(role="user", parts=[types.Part(text=item.text)])
                await session.send_client_content(turns=turn, turn_complete=True)
            else:
                await session.send_realtime_input(text=item.text)
        elif isinstance(item, _SeedHistory):
            turns: list[types.Content | types.ContentDict] = [
                types.Content(role=role, parts=[types.Part(text=text)]) for role, text in item.turns
            ]
            await session.send_client_content(turns=turns, turn_complete=True)
        elif isinstance(item, _ContextUpdate):
            await session.send_context_update(
                system_instruction=item.instruction,
                tools=_declarations(item.tools, self._behavior),
            )
        else:
            response = types.FunctionResponse(
                id=item.call_id,
                name=item.name,
                response=item.response,
                scheduling=self._scheduling,
            )
            await session.send_tool_response(function_responses=[response])

    # --- reading ----------------------------------------------------------------------------

    async def _read(self, session: genai_live.AsyncSession) -> None:
        try:
            async with asyncio.timeout(None) as deadline:
                self._deadline = deadline
                while True:
                    # receive() ends after each turn_complete: loop it for the whole connection.
                    async for message in session.receive():
                        self._on_message(message)
                        if self._go_away_at is not None and self._at_turn_boundary():
                            raise _MoveOn
                        if self._move_wanted and self._at_turn_boundary():
                            self._move_now.set()
        except TimeoutError:
            if self._go_away_at is None:
                raise
            raise _MoveOn from None  # go_away's deadline came before a turn boundary
        finally:
            self._deadline = None

    def _on_message(self, message: types.LiveServerMessage) -> None:
        if self._closed:
            return  # draining while the connection closes
        update = message.session_resumption_update
        if update is not None and update.resumable and update.new_handle:
            self._handle = update.new_handle
        if message.go_away is not None:
            self._on_go_away(message.go_away.time_left)
        if message.tool_call_cancellation is not None:
            for call_id in message.tool_call_cancellation.ids or ():
                if self._pending_tools.pop(call_id, None) is not None:
                    self._cancelled_tools.add(call_id)
        content = message.server_content
        if content is not None:
            self._on_content(content)
        if message.tool_call is not None:
            self._on_tool_call(message.tool_call)

    def _on_content(self, content: types.LiveServerContent) -> None:
        if content.input_transcription is not None and content.input_transcription.text:
            self._caller_text.append(content.input_transcription.text)
        if content.model_turn is not None:
            for part in content.model_turn.parts or ():
                blob = part.inline_data
                if blob is not None and blob.data and not self._muted:
                    self._on_model_audio(blob.data, blob.mime_type)
        if (
            content.output_transcription is not None
            and content.output_transcription.text
            and not self._muted
        ):
            self._begin_utterance().text.append(content.output_transcription.text)
        if content.interrupted:
            self._progress = True
            if not self._muted:
                # Gemini heard the caller before our own VAD did: drop what is queued for playback.
                current = self._utterance.id if self._utterance is not None else None
                self._events.put_nowait(ModelInterrupted(utterance_id=current))
            self._muted = False
            self._end_utterance(play_tail=False)
        if content.turn_complete:
            self._progress = True
            self._muted = False
            self._end_utterance(play_tail=True)
            self._flush_caller_text()
            self._events.put_nowait(TurnComplete())

    def _on_model_audio(self, data: bytes, mime_type: str | None) -> None:
        self._progress = True
        utterance = self._begin_utterance(mime_type)
        pcm = utterance.resampler.process(data)
        if pcm:
            self._events.put_nowait(AgentAudio(pcm=pcm, utterance_id=utterance.id))

    def _on_tool_call(self, tool_call: types.LiveServerToolCall) -> None:
        self._progress = True
        muted = self._muted
        self._end_utterance(play_tail=not muted)
        self._flush_caller_text()
        for function in tool_call.function_calls or ():
            call_id = function.id or f"gemini-call-{next(self._ids)}"
            name = function.name or ""
            if muted:
                # Asked in a reply the caller cut off: it never runs, but the model is told so (a sync model
                # would otherwise wait for the answer forever).
                log.info("gemini_tool_call_of_cut_reply", name=name)
                self._queue(
                    _ToolResponse(
                        call_id=call_id,
                        name=name,
                        response={"error": "not run: the caller interrupted this reply"},
                    )
                )
                continue
            self._pending_tools[call_id] = name
            self._events.put_nowait(
                ToolCall(call_id=call_id, name=name, arguments=_json_args(function.args))
            )

    def _begin_utterance(self, mime_type: str | None = None) -> _Utterance:
        if self._utterance is not None:
            return self._utterance
        self._flush_caller_text()  # the caller's words come before the reply in the transcript
        assert self._call is not None
        rate = GEMINI_OUTPUT_RATE
        if mime_type and (found := _RATE.search(mime_type)):
            rate = int(found.group(1))
        utterance_id = self._say_ids.popleft() if self._say_ids else f"gemini-{next(self._ids)}"
        self._utterance = _Utterance(utterance_id, Resampler(rate, self._call.sample_rate))
        if (started := self._say_started.get(utterance_id)) is not None:
            started.set()
        return self._utterance

    def _end_utterance(self, *, play_tail: bool) -> None:
        utterance, self._utterance = self._utterance, None
        if utterance is None:
            return
        tail = utterance.resampler.flush()
        if tail and play_tail:
            self._events.put_nowait(AgentAudio(pcm=tail, utterance_id=utterance.id))
        self._events.put_nowait(AgentUtteranceEnd(utterance_id=utterance.id))
        text = " ".join("".join(utterance.text).split())
        if text:
            self._history.append(("model", text))
            self._events.put_nowait(Speech(role="agent", text=text, utterance_id=utterance.id))

    def _flush_caller_text(self) -> None:
        text = " ".join("".join(self._caller_text).split())
        self._caller_text.clear()
        if text:
            self._history.append(("user", text))
            self._events.put_nowait(Speech(role="caller", text=text))

    # --- go_away and failure ----------------------------------------------------------------

    def _on_go_away(self, time_left: str | None) -> None:
        seconds = 0.0
        if time_left and (found := _TIME_LEFT.match(time_left)):
            seconds = float(found.group(1))
        loop = asyncio.get_running_loop()
        self._go_away_at = loop.time() + max(seconds - self._config.go_away_margin_s, 0.0)
        log.info("gemini_go_away", time_left_s=seconds, resumable=self._handle is not None)
        if self._deadline is not None:
            self._deadline.reschedule(self._go_away_at)

    def _at_turn_boundary(self) -> bool:
        return self._utterance is None and not self._pending_tools

    def _request_move(self) -> None:
        """Reconnect (resumed) so that the setup carries the new state: now if between turns, else after."""
        if self._at_turn_boundary():
            self._move_now.set()
        else:
            self._move_wanted = True

    def _fail(self, reason: str) -> None:
        if self._failed or self._closed:
            return
        self._failed = True
        log.warning("gemini_failed", reason=reason)
        for started in self._say_started.values():
            started.set()  # nothing will be said: let the session go on (it has its own voice)
        self._end_utterance(play_tail=False)
        self._events.put_nowait(BrainFailure(reason=reason))

    def __repr__(self) -> str:
        return f"GeminiLiveBrain(model={self._config.model!r})"

