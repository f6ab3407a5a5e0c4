"""CallSession: one live call — the flow's machine, the brain, the media socket and the orders lookup, tied.

The one module that knows every other room. Inputs (caller audio, VAD decisions, brain events, lookup results,
timers, the socket closing) are routed one at a time through an inbox, so the machine sees a single ordered
event stream; only the audio hot paths skip it (caller PCM → VAD and brain; agent PCM → paced writer).
All time comes from the event loop's clock, so tests can fast-forward it and transcripts stay deterministic.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, cast

import httpx
import structlog

from orchestrator.audio.beep import BeepDetector
from orchestrator.audio.echo import EchoGate
from orchestrator.audio.frames import PcmAssembler
from orchestrator.audio.pacer import PacedWriter, PlayedSegment
from orchestrator.audio.synth import synthesize_speech
from orchestrator.audio.vad import Endpointer, VadEvent, Voicing, make_voicing
from orchestrator.brains.base import (
    AgentAudio,
    AgentUtteranceEnd,
    Brain,
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
)
from orchestrator.call.answering import AnsweringDetector, AnsweringEvent
from orchestrator.call.bargein import BargeIn, BargeInRecord, Interruption
from orchestrator.call.escalation import EscalationResult, escalate
from orchestrator.call.handoff import HandoffBrief, build_brief
from orchestrator.call.keypad import KeypadCollector, keypad_plan
from orchestrator.call.observer import NULL_OBSERVER, BargeInOutcome, CallObserver
from orchestrator.call.tools import ToolCallContext, ToolHandler, ToolOutcome, perform
from orchestrator.call.transcript import EntryKind, Outcome, Transcript
from orchestrator.errors import OrdersError
from orchestrator.flow import CallMachine, Flow, StateEntered, render
from orchestrator.flow.languages import (
    LANGUAGE_EVENT,
    SET_LANGUAGE_TOOL,
    LocalText,
    language_name,
    text_for,
)
from orchestrator.flow.machine import call_view
from orchestrator.flow.templates import spoken_eta, spoken_order_number, status_words
from orchestrator.logging import mask_phone
from orchestrator.orders import LookupResult, Order, OrdersClient, normalise_order_number
from orchestrator.telephony.dtmf import clean_keys
from orchestrator.telephony.metadata import StreamMetadata
from orchestrator.telephony.outbound import OutboundRequest
from orchestrator.telephony.rest import CallRecord, SautikitClient, SautikitError
from orchestrator.telephony.stream import MediaStream, StreamClosed, StreamKeys, StreamPcm
from orchestrator.telephony.webhook import CallStart
from orchestrator.telephony.xml import DialVerb

__all__ = ["CallServices", "CallSession", "SessionOptions"]

log = structlog.get_logger(__name__)

ESCALATION_STATE = "escalating"
# No single utterance plays longer than this; a wait for one gives up after it.
_LONGEST_UTTERANCE_S = 120.0
# Agent audio leaves in writes of up to two frames: half the writes, ~35% less CPU (bench/pacer.py).
_PACER_BATCH_FRAMES = 2
# A pending barge-in is decided on audio time; only when no caller audio has arrived for this long (the
# platform stopped sending) is it decided on the loop's clock, this long after its audio deadline.
_AUDIO_STALL_S = 2.0
NARRATION_STATE = "narrating"


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionOptions:
    sample_rate: int = 16000
    channels: int = 1
    lookup_deadline_s: float = 5.0
    # The inbound mix may carry the agent's own voice (track="both_tracks", mono): remove it before VAD.
    cancel_echo: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class CallServices:
    """Outside services a call may use beyond the orders API; each is optional."""

    rest: SautikitClient | None = None  # hang-up, supervision, call records
    http: httpx.AsyncClient | None = None  # the callback webhook
    callback_timeout_s: float = 5.0
    rest_timeout_s: float = 5.0
    # How long a brain may take to start speaking a state's `say` before the session's own voice does.
    say_start_timeout_s: float = 5.0
    # Code handlers of the flow's tools, by tool name (`add_routes(..., tools=...)`).
    tools: Mapping[str, ToolHandler] = field(default_factory=dict)
    # Signs the hand-off brief POSTed to `escalation.brief_url` (the service's webhook secret).
    brief_secret: bytes | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class _LookupDone:
    call: ToolCall
    event: Literal["order_found", "order_not_found", "lookup_failed"]
    result: dict[str, JSONValue]


@dataclass(frozen=True, slots=True, kw_only=True)
class _ToolDone:
    call: ToolCall
    outcome: ToolOutcome


@dataclass(frozen=True, slots=True, kw_only=True)
class _SilenceTimeout:
    generation: int


@dataclass(frozen=True, slots=True, kw_only=True)
class _Answering:
    """An outbound call's callee was told apart: a person, a voicemail greeting, or that greeting's end."""

    event: AnsweringEvent


@dataclass(frozen=True, slots=True, kw_only=True)
class _KeypadTimeout:
    """No key for the state's `digit_timeout`: the digits typed so far are the entry."""

    generation: int


@dataclass(frozen=True, slots=True, kw_only=True)
class _UtterancePlayed:
    segment: PlayedSegment


@dataclass(frozen=True, slots=True, kw_only=True)
class _BargeInDecided:
    """The barge-in deadline was reached: the agent was cut off (an Interruption) or resumed (ms heard)."""

    decision: Interruption | int


@dataclass(frozen=True, slots=True, kw_only=True)
class _CallerHungUp:
    """Sautikit reported the call completed (a lifecycle re-POST) while the stream was still open."""


@dataclass(frozen=True, slots=True, kw_only=True)
class _ShuttingDown:
    """The service is stopping: the flow's `shutdown` route ends or transfers the call."""


@dataclass(frozen=True, slots=True, kw_only=True)
class _EscalationDone:
    """The escalation strategies finished (the call may end once its stream is gone)."""


_Input = (
    VadEvent
    | _BargeInDecided
    | _CallerHungUp
    | _ShuttingDown
    | _EscalationDone
    | BrainEvent
    | _LookupDone
    | _ToolDone
    | _SilenceTimeout
    | _KeypadTimeout
    | _Answering
    | StreamKeys
    | _UtterancePlayed
    | StreamClosed
)


class CallSession:
    """Created at the voice webhook; `run()` drives it while the media socket is open."""

    def __init__(
        self,
        *,
        start: CallStart,
        flow: Flow,
        brain: Brain,
        orders: OrdersClient,
        options: SessionOptions,
        services: CallServices | None = None,
        fallback_tts: Callable[[str, int], Awaitable[bytes]] | None = None,
        observer: CallObserver | None = None,
        outbound: OutboundRequest | None = None,
    ) -> None:
        self.services = services or CallServices()
        # Metrics, traces and recordings (orchestrator/observe/) hear of the call's facts through this.
        self.observer = observer or NULL_OBSERVER
        self.call_sid = start.call_sid
        # A call the shop placed: the person on the line is the number called, not the caller id.
        self.outbound = outbound
        self.caller = outbound.to if outbound is not None else start.caller
        self.flow = flow
        self.brain = brain
        self.orders = orders
        self.options = options
        self._fallback_tts = fallback_tts or _synthetic_voice
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._t0 = loop.time()
        self.transcript = Transcript(call_sid=start.call_sid)
        self.context: MutableMapping[str, object] = self._initial_context(start)
        self.machine = CallMachine(flow, self.context)
        self.pending_dial: DialVerb | None = None
        self._dial_answered: asyncio.Future[None] | None = None
        self._escalation_task: asyncio.Task[None] | None = None
        self.escalation_result: EscalationResult | None = None
        self._transfer_reason: str | None = None  # transfer_to_human's `reason`, for the brief
        self._found: tuple[Order, ...] = ()  # the last lookup's orders, to speak again in a new language
        self.call_record: CallRecord | None = None
        self._muted = False
        self._started_utterances: set[str] = set()
        self._start_waiters: dict[str, asyncio.Future[None]] = {}
        self._heard_waiters: dict[str, asyncio.Future[None]] = {}
        self.stream_attached = False
        self.finished = asyncio.Event()
        self._prefetch: asyncio.Future[LookupResult] | None = None
        # Told of each `<Dial>` the escalation offers: several workers keep it where any can answer with it.
        self.dial_listeners: list[Callable[[DialVerb], None]] = []
        self._inbox: asyncio.Queue[_Input] = asyncio.Queue()
        self._media: MediaStream | None = None
        self._pacer: PacedWriter | None = None
        self._tasks: asyncio.TaskGroup | None = None
        self._utterance_state: dict[str, str] = {}
        self._utterance_text: dict[str, str] = {}
        self._cut: set[str] = set()
        self._utterance_seq = 0
        self._silence_generation = 0
        self._silence_handle: asyncio.TimerHandle | None = None
        self._waited_for_reply = False  # the timer already waited once for the agent's answer to this turn
        self._caller_speaking = False
        self._closing_reason: str | None = None
        self._brain_alive = True
        self._order_delivered = False
        self._caller_left = False
        self._shutting_down = False
        self._cut_short = False
        self._stream_t0 = 0.0
        self._barge_in = BargeIn(
            min_speech_ms=flow.vad.min_speech_ms, confirm_ms=flow.vad.barge_in_confirm_ms
        )
        self._last_frame_at = 0.0
        self._last_audio_at = 0.0  # loop time the caller's latest audio arrived
        # A barge-in's killAudio, due as soon as the read loop finishes the frame that decided it.
        self._kill_due = False
        self._barge_detector: Endpointer | None = None
        self._turn_detector: Endpointer | None = None
        self._turn_ended_at: float | None = None  # loop time the turn detector last heard the caller stop
        self._caller_turn_open = False  # the caller spoke since the agent's last reply began
        self._echo = EchoGate(rate=options.sample_rate) if options.cancel_echo else None
        self._echo_cursor = 0.0
        self.greeting = self.machine.start(outbound=outbound is not None)
        # Outbound: who answered (a person or a voicemail greeting) and the order the call is about.
        self.outbound_result: Literal["answered", "voicemail"] | None = None
        self._answering: AnsweringDetector | None = None
        self._beep: BeepDetector | None = None
        if outbound is not None and flow.outbound is not None:
            self._answering = AnsweringDetector(
                greeting_ms=flow.outbound.greeting_ms,
                quiet_answer_ms=flow.outbound.quiet_answer_ms,
            )
            self._beep = BeepDetector(rate=options.sample_rate)
        self._outbound_order: asyncio.Task[LookupResult] | None = None
        self._keypad = KeypadCollector(keypad_plan(self.machine.state_spec()))
        self._keypad_generation = 0
        self._keypad_handle: asyncio.TimerHandle | None = None
        self._note("call", self._call_line(start))
        if self._multilingual:
            line = "the line calling out" if outbound is not None else "the number called"
            self._note("language", f"{self.language} ({line})")
        self._note("state", f"-> {self.greeting.state}")

    # --- webhook side -----------------------------------------------------------------------

    def _initial_context(self, start: CallStart) -> MutableMapping[str, object]:
        number = self.caller or ""
        escalation = self.flow.escalation
        return {
            "caller": {
                "number": number,
                "number_spoken": " ".join(c for c in number if c.isdigit()),
            },
            "shop": dict(self.flow.shop),
            "flow": {"name": self.flow.name},
            "escalation": {"number": escalation.number if escalation else ""},
            "order": {},
            "orders": {"count": 0},
            # Picks every text's words (flow/languages.py); set_language changes it mid-call.
            # An outbound call speaks the language of the shop's line it comes from (`From`).
            "language": self.flow.language_for_number(
                start.caller if self.outbound is not None else start.callee
            ),
        }

    @property
    def language(self) -> str:
        """The call's language now (the number called, then the caller's or the model's choice)."""
        return self.machine.language

    @property
    def _multilingual(self) -> bool:
        return len(self.flow.call_languages) > 1

    def _call_line(self, start: CallStart) -> str:
        caller = mask_phone(start.caller) if start.caller else "unknown"
        callee = mask_phone(start.callee) if start.callee else "unknown"
        line = f"{start.call_sid} from {caller} to {callee} flow {self.flow.name}"
        if self.outbound is not None:
            line += f" (outbound: order {self.outbound.order}, attempt {self.outbound.attempt})"
        return line

    def prefetch_orders(self, on_found: Callable[[LookupResult], None] | None = None) -> None:
        """Look up the caller's recent orders in the background while the greeting plays.

        `on_found` hears the answer (not a failure): another worker taking the call reuses it. An outbound
        call looks its order up too, while the callee picks up and says hello."""
        self._look_up_outbound_order()
        if self.caller and self._prefetch is None:
            self._prefetch = self._loop.create_task(self.orders.by_phone(self.caller))
            self._prefetch.add_done_callback(_consume_exception)
            if on_found is not None:
                self._prefetch.add_done_callback(
                    lambda done: on_found(done.result())
                    if not done.cancelled() and done.exception() is None
                    else None
                )

    def use_prefetched(self, result: LookupResult) -> None:
        """The caller's orders as another worker's webhook already found them: no second lookup."""
        if self._prefetch is None:
            self._prefetch = self._loop.create_future()
            self._prefetch.set_result(result)

    def note_xml(self, xml: str) -> None:
        self._note("xml", xml)

    def note_status(self, fields: Mapping[str, str]) -> None:
        event = fields.get("event") or fields.get("Event") or fields.get("status") or "?"
        self._note("status", f"stream status {event}")

    def note_event(self, kind: str, data: Mapping[str, object]) -> None:
        """A Sautikit event about this call (call.completed, call.failed, recording ready...)."""
        detail = ", ".join(
            f"{k}={data[k]}" for k in ("status", "duration_seconds", "url") if k in data
        )
        self._note("event", f"{kind}{': ' + detail if detail else ''}")
        if kind == "call.completed" and not self.finished.is_set() and not self.stream_attached:
            self._caller_left = True

    def note_webhook_again(self, state: str | None) -> None:
        self._note("call", f"webhook again (callSessionState={state or '-'})")
        if state != "completed" or self.finished.is_set():
            return
        self._caller_left = True
        if self.stream_attached and self._closing_reason is None:
            # The platform says the call is over while our stream is still open: the caller hung up.
            self._inbox.put_nowait(_CallerHungUp())

    def press_keys(self, keys: str) -> None:
        """Keys reported outside the media socket (the webhook's `Digits`), handled like the socket's."""
        cleaned = clean_keys(keys)
        if cleaned is not None and not self.finished.is_set():
            self._inbox.put_nowait(StreamKeys(keys=cleaned))

    def shut_down(self) -> None:
        """The service is stopping: send `shutdown` through the flow (a goodbye or a transfer), else hang up."""
        if not self.finished.is_set() and not self._shutting_down:
            self._shutting_down = True
            self._inbox.put_nowait(_ShuttingDown())

    def cut_short(self) -> None:
        """The service's shutdown grace is spent and this call is still going: it is about to be cut, and
        its socket closing then is the service's doing, not the caller hanging up."""
        if not self.finished.is_set():
            self._cut_short = True

    @property
    def barge_ins(self) -> list[BargeInRecord]:
        """Every time the caller spoke over the agent, with what was decided and how fast."""
        return self._barge_in.records

    def take_dial(self) -> DialVerb | None:
        """The Dial to answer Sautikit's next request with, once (the `dial` escalation strategy)."""
        dial, self.pending_dial = self.pending_dial, None
        if dial is not None:
            self._note("escalate", f"dial {mask_phone(dial.number)} answered to Sautikit")
            if self._dial_answered is not None and not self._dial_answered.done():
                self._dial_answered.set_result(None)
            self.escalation_result = "dialled"
            self._finish_outcome()
        return dial

    # --- the live call ----------------------------------------------------------------------

    async def run(self, media: MediaStream) -> None:
        """Drive the call until the stream ends; never raises for anything the caller did."""
        self.stream_attached = True
        self._media = media
        self._note("stream", "connected")
        self._stream_t0 = self._loop.time()  # inbound audio position 0, for turn latency
        self.observer.stream_started(at=self._stream_t0)
        pacer = PacedWriter(
            self._send_frame,
            rate=self.options.sample_rate,
            batch_frames=_PACER_BATCH_FRAMES,
            on_utterance_done=lambda seg: self._inbox.put_nowait(_UtterancePlayed(segment=seg)),
        )
        self._pacer = pacer
        try:
            try:
                async with asyncio.TaskGroup() as tasks:
                    self._tasks = tasks
                    tasks.create_task(self._write_audio(pacer))
                    tasks.create_task(self._read_stream(media))
                    try:
                        info = self._call_info()
                        self.transcript.system_prompt = info.system_prompt  # what the model is told
                        await self.brain.start(info)
                    except Exception as exc:  # a brain that cannot start is the flow's brain_failed route
                        log.exception("brain_start_failed")
                        self._inbox.put_nowait(BrainFailure(reason=f"brain could not start: {exc!r}"))
                    tasks.create_task(self._pump_brain())
                    await self._enter(self.machine.send("stream_started"))
                    self._arm_answering_backstop()
                    await self._route()
                    raise _CallOver
            except* _CallOver:
                pass
        except asyncio.CancelledError:
            # The server may cancel a handler whose connection dropped (aiohttp's handler_cancellation):
            # that is the caller leaving too, and the record must say so before the cancellation goes on.
            self._record_lost_stream()
            raise
        finally:
            self._cancel_silence()
            self.observer.stream_ended(at=self._loop.time())
            await self.brain.close()
            if self._prefetch is not None:
                self._prefetch.cancel()
            if not media.closed:
                await media.close()
            self.pending_dial = None  # the call is over: a late request gets an empty Response
            self._finish_outcome()

    async def _write_audio(self, pacer: PacedWriter) -> None:
        with contextlib.suppress(ConnectionError):
            await pacer.run()

    async def _send_frame(self, frame: bytes) -> None:
        assert self._media is not None
        self._last_frame_at = self._loop.time()
        if self._echo is not None:
            # Frames leave up to the pacer's lead early, back to back: place each where it will play.
            at_s = max(self._loop.time(), self._echo_cursor)
            self._echo_cursor = at_s + len(frame) / (2 * self.options.sample_rate)
            self._echo.played(frame, at_s=at_s)
        self.observer.agent_audio(frame, at=self._last_frame_at)
        await self._media.send_audio(frame)

    @property
    def _frames_out(self) -> int:
        """Agent frames written so far (a write may carry several)."""
        return self._pacer.frames_sent if self._pacer is not None else 0

    def _detectors(self) -> tuple[Voicing, Endpointer, Endpointer]:
        """One classification of each frame, two views of it: turn-taking (slow to end), barge-in (quick)."""
        vad = self.flow.vad
        kw: dict[str, int] = {"rate": self.options.sample_rate}
        if vad.detector == "webrtc":
            kw["mode"] = vad.aggressiveness
        voicing = make_voicing(vad.detector, **kw)
        turns = Endpointer.for_voicing(
            voicing, min_speech_ms=vad.min_speech_ms, min_silence_ms=vad.end_of_turn_ms
        )
        barge = Endpointer.for_voicing(
            voicing, min_speech_ms=vad.min_speech_ms, min_silence_ms=vad.backchannel_silence_ms
        )
        return voicing, turns, barge

    def _hear(self, levels: list[int], turns: Endpointer, barge: Endpointer) -> None:
        """Step both detectors through each frame; barge-in is decided at the frame, on audio time."""
        barge_in = self._barge_in
        for level in levels:
            event = barge.step(level)
            if event is not None:
                # Decided here, not after a trip through the inbox: the agent must fall silent now.
                self._on_barge_vad(event, barge.position_ms)
            elif barge_in.pending:
                self._decide_barge_in_at(barge.position_ms)
            event = turns.step(level)
            if event is not None:
                if event.kind == "speech_started":
                    self._caller_turn_open = True
                    self._waited_for_reply = False
                else:
                    self._turn_ended_at = self._loop.time()
                self._inbox.put_nowait(event)

    async def _read_stream(self, media: MediaStream) -> None:
        channels = self.options.channels
        assembler: PcmAssembler | None = None
        voicing, turns, barge = self._detectors()
        self._turn_detector, self._barge_detector = turns, barge
        async for item in media.frames():
            if isinstance(item, StreamPcm):
                if assembler is None:
                    assembler = PcmAssembler(channels=channels)
                pcm = assembler.feed(item.data)
                if not pcm:
                    continue
                self._last_audio_at = now = self._loop.time()
                if self._echo is not None:
                    pcm = self._echo.clean(pcm, arrived_s=now)
                self.observer.caller_audio(pcm)
                self._hear(voicing.feed(pcm), turns, barge)
                if self._kill_due:
                    # Sent from here, before the next frame is read: a task of its own would wait a
                    # whole turn of the event loop, which under load is most of the kill's latency.
                    self._kill_due = False
                    await self._kill_platform_audio()
                if self._answering is not None:
                    self._tell_who_answered(pcm, turns)
                    continue  # the brain hears nothing until a person has answered
                if self._brain_alive and not self._muted:
                    await self.brain.push_audio(pcm)
            elif isinstance(item, StreamMetadata):
                channels = item.channels
                if channels == 2:
                    # A stereo mix keeps the agent on its own channel: no echo to remove.
                    self._echo = None
                self._note("stream", f"metadata {json.dumps(_safe_metadata(item), sort_keys=True)}")
            elif isinstance(item, StreamKeys):
                self._inbox.put_nowait(item)
            else:
                self._inbox.put_nowait(item)
                return

    async def _pump_brain(self) -> None:
        try:
            async for event in self.brain.events():
                if isinstance(event, AgentAudio):
                    self._play(event.pcm, event.utterance_id)
                else:
                    self._inbox.put_nowait(event)
        except Exception as exc:
            # An adapter bug must become the flow's brain_failed route, not a crash.
            log.exception("brain_crashed")
            self._inbox.put_nowait(BrainFailure(reason=f"brain crashed: {exc!r}"))

    def _play(self, pcm: bytes, utterance_id: str) -> None:
        if utterance_id in self._cut or self._pacer is None or self._muted:
            return
        if self._shutting_down and utterance_id not in self._heard_waiters:
            return  # the service is stopping: only the flow's own words (its goodbye) still play
        if utterance_id not in self._started_utterances:
            if not self._started_utterances:
                self.observer.first_prompt(
                    stream_started=self._stream_t0, audio_started=self._loop.time()
                )
                self._note_first_prompt()
            self._started_utterances.add(utterance_id)
            self._cancel_silence()  # the caller is listening; the timer starts again once the agent is done
            started = self._start_waiters.pop(utterance_id, None)
            if started is not None and not started.done():
                started.set_result(None)
            if self._caller_turn_open:
                self._note_reply_latency()
        self._utterance_state.setdefault(utterance_id, self.machine.state)
        self._pacer.enqueue(pcm, utterance_id=utterance_id)

    def _note_first_prompt(self) -> None:
        """Dead air at the start: stream connected -> the agent's first audio (transcript JSON, store)."""
        first_prompt_ms = round((self._loop.time() - self._stream_t0) * 1000)
        self.transcript.first_prompt_ms = first_prompt_ms
        log.info("first_prompt", first_prompt_ms=first_prompt_ms)

    def _note_reply_latency(self) -> None:
        """How long the caller waited: their last speech frame → the agent's first reply audio, by stage.

        Measured whenever the reply comes, also when the brain answers before the session's own end-of-turn
        detector has decided (a model with its own turn detection often does)."""
        self._caller_turn_open = False
        turns = self._turn_detector
        if turns is None:
            return
        now = self._loop.time()
        speech_ended = self._stream_t0 + turns.speech_end_ms / 1000
        total_ms = max(0, round((now - speech_ended) * 1000))
        detected = self._turn_ended_at if not turns.in_speech else None
        if detected is None:
            self._note(
                "latency",
                f"reply audio {total_ms} ms after the caller stopped "
                "(the brain answered before the end of turn was detected)",
            )
            log.info("turn_latency", total_ms=total_ms, endpointing_ms=None)
        else:
            endpointing_ms = round((detected - speech_ended) * 1000)
            self._note(
                "latency",
                f"reply audio {total_ms} ms after the caller stopped "
                f"(end of turn detected {endpointing_ms} ms, agent {total_ms - endpointing_ms} ms)",
            )
            log.info("turn_latency", total_ms=total_ms, endpointing_ms=endpointing_ms)
        self.observer.turn(
            state=self.machine.state,
            speech_ended=speech_ended,
            # The brain's own turn detection came first: its end of turn is no later than its reply.
            turn_detected=detected if detected is not None else now,
            reply_started=now,
        )

    async def _route(self) -> None:
        stream_closed = False
        while True:
            item = await self._inbox.get()
            if isinstance(item, StreamClosed):
                await self._on_stream_closed()
                stream_closed = True
            elif isinstance(item, _EscalationDone):
                pass
            else:
                await self._handle(item)
            # A dial closes the stream and then waits for Sautikit's next request: the call goes on.
            escalating = self._escalation_task is not None and not self._escalation_task.done()
            if stream_closed and not escalating:
                return

    async def _handle(self, item: _Input) -> None:
        if isinstance(item, VadEvent):
            await self._on_vad(item)
        elif isinstance(item, _BargeInDecided):
            await self._on_barge_in_decided(item.decision)
        elif isinstance(item, _CallerHungUp):
            await self._on_caller_hung_up()
        elif isinstance(item, _ShuttingDown):
            await self._on_shutting_down()
        elif isinstance(item, Speech):
            if item.utterance_id is not None:
                self._utterance_text[item.utterance_id] = item.text
            self._note(item.role, f'"{item.text}"')
        elif isinstance(item, ToolCall):
            await self._on_tool_call(item)
        elif isinstance(item, _LookupDone):
            await self._on_lookup_done(item)
        elif isinstance(item, _ToolDone):
            await self._on_tool_done(item)
        elif isinstance(item, AgentUtteranceEnd):
            if self._pacer is not None and item.utterance_id not in self._cut:
                self._pacer.end_utterance(item.utterance_id)
        elif isinstance(item, _UtterancePlayed):
            await self._on_utterance_played(item.segment)
        elif isinstance(item, StreamKeys):
            await self._on_keys(item.keys)
        elif isinstance(item, _Answering):
            await self._on_answering(item.event)
        elif isinstance(item, _KeypadTimeout):
            if item.generation == self._keypad_generation:
                entry = self._keypad.timeout()
                if entry is not None:
                    await self._on_keypad_entry(entry)
        elif isinstance(item, _SilenceTimeout):
            if item.generation == self._silence_generation:
                await self._on_silence_timeout()
        elif isinstance(item, ModelInterrupted):
            await self._on_model_interrupted(item)
        elif isinstance(item, BrainFailure):
            await self._on_brain_failure(item)
        elif isinstance(item, TurnComplete):
            await self._enter(self.machine.send("turn_complete"))
        elif isinstance(item, StateDelivered):
            self._note("model", f"{item.state} reached the model by {item.via}")
        elif isinstance(item, BrainReconnected):
            self.observer.brain_reconnected(at=self._loop.time())

    # --- caller speech and barge-in ---------------------------------------------------------

    async def _on_vad(self, event: VadEvent) -> None:
        if event.kind == "speech_started":
            self._caller_speaking = True
            self._cancel_silence()
            await self._enter(self.machine.send("speech_started"))
        else:
            self._caller_speaking = False
            await self._enter(self.machine.send("speech_stopped"))
            self._arm_silence()

    # Barge-in (call/bargein.py decides; here its decisions are carried out).

    def _on_barge_vad(self, event: VadEvent, position_ms: int) -> None:
        if self._pacer is None:
            return
        decision = self._barge_in.on_vad(
            event,
            pacer=self._pacer,
            interruptible=self.machine.state_spec().interruptible,
            now=self._loop.time(),
            frames_out=self._frames_out,
            position_ms=position_ms,
        )
        if decision == "ignored":
            self._note("barge-in", f"ignored: {self.machine.state} is not interruptible")
            self.observer.barge_in("ignored", at=self._loop.time())
        elif decision is not None:
            self._kill_due = True  # the read loop sends it once this frame is heard (_read_stream)
            self._loop.call_later(
                decision.confirm_after_s + _AUDIO_STALL_S, self._barge_in_if_stalled, decision.generation
            )

    def _decide_barge_in_at(self, position_ms: int) -> None:
        """The barge-in detector heard up to `position_ms`: settle a pending barge-in that this reaches."""
        if self._pacer is None:
            return
        decision = self._barge_in.at_audio(
            position_ms, pacer=self._pacer, frames_out=self._frames_out, last_frame_at=self._last_frame_at
        )
        if decision is not None:
            self._inbox.put_nowait(_BargeInDecided(decision=decision))

    def _barge_in_if_stalled(self, generation: int) -> None:
        """The wall-clock backstop: decide a pending barge-in only if the caller's audio stopped arriving."""
        if self._pacer is None or not self._barge_in.waiting(generation):
            return
        quiet_s = self._loop.time() - self._last_audio_at
        if quiet_s < _AUDIO_STALL_S:
            # Audio still flows (perhaps in bursts): the audio clock will reach the deadline.
            self._loop.call_later(_AUDIO_STALL_S - quiet_s, self._barge_in_if_stalled, generation)
            return
        decision = self._barge_in.confirm(
            generation, pacer=self._pacer, frames_out=self._frames_out, last_frame_at=self._last_frame_at
        )
        if decision is not None:
            self._inbox.put_nowait(_BargeInDecided(decision=decision))

    async def _kill_platform_audio(self) -> None:
        if self._media is not None:
            with contextlib.suppress(ConnectionError):
                await self._media.kill_audio()

    async def _on_barge_in_decided(self, decision: Interruption | int) -> None:
        outcome: BargeInOutcome = (
            "interrupted" if isinstance(decision, Interruption) else "backchannel"
        )
        self.observer.barge_in(outcome, at=self._loop.time())
        if isinstance(decision, Interruption):
            await self._on_interruption(decision)
        else:
            self._note(
                "barge-in",
                f"short sound over the agent ({decision} ms): not an interruption, agent resumed",
            )

    async def _on_interruption(self, interruption: Interruption) -> None:
        for segment in interruption.cut:
            self._cut.add(segment.utterance_id)
            self._resolve_heard(segment.utterance_id)
        heard = interruption.heard
        if heard is None:
            return
        self._note(
            "barge-in",
            f"caller spoke at {interruption.onset_ms} ms of stream; agent cut at {heard.played_ms}/"
            f'{heard.total_ms} ms; heard "{self._heard_words(heard)}"',
        )
        if self._brain_alive:
            await self.brain.interrupt(
                Heard(
                    utterance_id=heard.utterance_id,
                    played_ms=heard.played_ms,
                    total_ms=heard.total_ms,
                )
            )

    def _heard_words(self, segment: PlayedSegment) -> str:
        text = self._utterance_text.get(segment.utterance_id, "")
        words = text.split()
        if not words or segment.total_ms <= 0:
            return ""
        # Speech runs at a roughly even rate, so the played share of the audio is the heard share of words.
        share = min(1.0, segment.played_ms / segment.total_ms)
        return " ".join(words[: int(len(words) * share)])

    async def _on_model_interrupted(self, event: ModelInterrupted) -> None:
        """The model heard the caller first (server-side VAD): silence what it had queued."""
        if self._barge_in.pending and self._pacer is not None:
            interruption = self._barge_in.interrupt(
                pacer=self._pacer, frames_out=self._frames_out, last_frame_at=self._last_frame_at
            )
            if interruption is not None:
                await self._on_interruption(interruption)
            return
        await self._cut_agent(ignored="model stopped", cause="the model heard the caller")

    async def _cut_agent(self, *, ignored: str, cause: str) -> PlayedSegment | None:
        """Silence the agent at once (a barge-in the VAD did not decide); what the caller heard of it."""
        if self._pacer is None or not self._pacer.speaking:
            return None
        if not self.machine.state_spec().interruptible:
            self._note("barge-in", f"{ignored}, ignored: {self.machine.state} is not interruptible")
            return None
        cut = self._pacer.flush()
        await self._kill_platform_audio()
        for segment in cut:
            self._cut.add(segment.utterance_id)
            self._resolve_heard(segment.utterance_id)
        heard = next((seg for seg in cut if seg.played_ms > 0), None)
        if heard is not None:
            self._note(
                "barge-in",
                f"{cause}; agent cut at {heard.played_ms}/{heard.total_ms} ms;"
                f' heard "{self._heard_words(heard)}"',
            )
        return heard

    # --- outbound calls ---------------------------------------------------------------------

    def _arm_answering_backstop(self) -> None:
        """The detector decides on audio time; should the platform send no audio at all, a person is
        assumed once the longest decision would have been made, so the callee is never left in silence."""
        settings = self.flow.outbound
        if self._answering is None or settings is None:
            return
        after_s = (settings.greeting_ms + settings.quiet_answer_ms) / 1000 + _AUDIO_STALL_S

        def backstop() -> None:
            if self._answering is not None and self._answering.verdict is None:
                self._answering = None
                self._note("call", "no audio from the callee: taken as answered by a person")
                self._inbox.put_nowait(_Answering(event="person"))

        self._loop.call_later(after_s, backstop)

    def _tell_who_answered(self, pcm: bytes, turns: Endpointer) -> None:
        """Step the answering-machine detection on this audio (the beep detector, the turn VAD's state)."""
        assert self._answering is not None and self._beep is not None
        beep = self._beep.feed(pcm)
        speaking = turns.in_speech or self._beep.in_tone
        event = self._answering.step(at_ms=turns.position_ms, speaking=speaking, beep=beep)
        if event is not None:
            if event != "voicemail":
                self._answering = None  # decided: from now on the brain hears the callee
            self._inbox.put_nowait(_Answering(event=event))

    async def _on_answering(self, event: AnsweringEvent) -> None:
        settings = self.flow.outbound
        assert settings is not None
        if event == "person":
            self._note("call", "answered by a person")
            self.outbound_result = "answered"
            await self._deliver_outbound("answered")
            return
        if self.outbound_result != "voicemail":
            self.outbound_result = "voicemail"
            self._note("call", "answered by voicemail (a long greeting, or a beep)")
        if settings.voicemail == "hang_up":
            if self._answering is not None or event == "greeting_over":
                self._answering = None
                assert self._tasks is not None
                self._tasks.create_task(self._hang_up("voicemail: no message, retried later", None))
        elif event == "greeting_over":
            self._note("call", "the greeting is over: leaving the message")
            await self._deliver_outbound("voicemail")

    def _look_up_outbound_order(self) -> None:
        if self.outbound is not None and self._outbound_order is None:
            self._outbound_order = self._loop.create_task(
                self.orders.by_order_number(
                    normalise_order_number(self.outbound.order),
                    caller=self.caller,
                    require_phone_match=self.flow.orders.require_phone_match,
                )
            )
            self._outbound_order.add_done_callback(_consume_exception)

    async def _deliver_outbound(self, event: Literal["answered", "voicemail"]) -> None:
        """Tell the machine who answered, with the order in context; its lookup's failure is routed instead."""
        self._look_up_outbound_order()  # started at the webhook, unless another worker answered it
        assert self._outbound_order is not None
        try:
            async with asyncio.timeout(self.options.lookup_deadline_s):
                found = await asyncio.shield(self._outbound_order)
        except (OrdersError, TimeoutError) as exc:
            reason = exc.reason if isinstance(exc, OrdersError) else "deadline exceeded"
            self._note("lookup", f"outbound order {self.outbound and self.outbound.order} failed: {reason}")
            routed = "lookup_failed"
        else:
            if found.kind == "found":
                self.context["order"] = self._order_context(found.orders[0])
                self.context["orders"] = {"count": 1}
                self._note("lookup", f"outbound order -> {found.orders[0].order_number} {found.orders[0].status}")
                routed = event
            else:
                self._note("lookup", "outbound order -> not found")
                routed = "order_not_found"
        entered = self.machine.send(routed)
        if entered is None:
            self._note("error", f"the flow does not route {routed} from {self.machine.state}: hanging up")
            assert self._tasks is not None
            self._tasks.create_task(self._hang_up(f"{routed} not routed", None))
            return
        await self._enter(entered)

    # --- the keypad -------------------------------------------------------------------------

    async def _on_keys(self, keys: str) -> None:
        """Key presses: each one silences the agent (a barge-in) and goes into the state's keypad entry."""
        self._cancel_silence()
        heard = await self._cut_agent(ignored="key press", cause="the caller pressed a key")
        if heard is not None and self._brain_alive:
            await self.brain.interrupt(
                Heard(utterance_id=heard.utterance_id, played_ms=heard.played_ms, total_ms=heard.total_ms)
            )
        for key in keys:
            entry = self._keypad.press(key)
            if entry is not None:
                await self._on_keypad_entry(entry)
        self._keypad_generation += 1
        if self._keypad_handle is not None:
            self._keypad_handle.cancel()
            self._keypad_handle = None
        if self._keypad.collecting:
            self._keypad_handle = self._loop.call_later(
                self._keypad.digit_timeout_s,
                self._inbox.put_nowait,
                _KeypadTimeout(generation=self._keypad_generation),
            )
        else:
            self._arm_silence()

    async def _on_keypad_entry(self, entry: Keypad) -> None:
        """A finished entry: into the context (`keypad.*`), to the machine as `dtmf`, then to the brain."""
        self.context["keypad"] = {
            "digits": entry.digits,
            "digits_spoken": " ".join(entry.digits),
            "intent": entry.intent or "",
        }
        self._note("keypad", f"{entry.text} -> {entry.intent or 'no keypad answer here'}")
        log.info("keypad_entry", digits=len(entry.digits), intent=entry.intent)
        await self._enter(self.machine.send("dtmf"))
        if self._brain_alive:
            await self.brain.keypad(entry)

    def _resolve_heard(self, utterance_id: str) -> None:
        waiter = self._heard_waiters.pop(utterance_id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _on_utterance_played(self, segment: PlayedSegment) -> None:
        self._resolve_heard(segment.utterance_id)
        if self._utterance_state.get(segment.utterance_id) == NARRATION_STATE:
            self._order_delivered = True
        if self._pacer is not None and not self._pacer.speaking:
            self._arm_silence()

    # --- silence ----------------------------------------------------------------------------

    def _arm_silence(self) -> None:
        self._cancel_silence()
        timeout = self.machine.state_spec().timeout
        if timeout is None or self._caller_speaking or (self._pacer and self._pacer.speaking):
            return
        generation = self._silence_generation
        self._silence_handle = self._loop.call_later(
            timeout, self._inbox.put_nowait, _SilenceTimeout(generation=generation)
        )

    async def _on_silence_timeout(self) -> None:
        if self._caller_turn_open and not self._waited_for_reply:
            # The caller spoke and the agent has not answered yet (a slow recogniser or model): "are you
            # still there?" would talk over an answer on its way. Wait once more for it; a brain that
            # never answers still gets the state's timeout route after that.
            self._waited_for_reply = True
            self._note("timer", f"waiting for the agent's answer in {self.machine.state}")
            self._arm_silence()
            return
        self._note("timer", f"no caller speech in {self.machine.state}")
        await self._enter(self.machine.send("silence_timeout"))

    def _cancel_silence(self) -> None:
        self._silence_generation += 1
        if self._silence_handle is not None:
            self._silence_handle.cancel()
            self._silence_handle = None

    # --- tools and lookups ------------------------------------------------------------------

    async def _on_tool_call(self, call: ToolCall) -> None:
        args = json.dumps(dict(call.arguments), sort_keys=True, ensure_ascii=False)
        self._note("tool", f"{call.name} {args}")
        if call.name == SET_LANGUAGE_TOOL and self._multilingual:
            await self._on_set_language(call)
            return
        if not self.machine.allows_tool(call.name):
            result: dict[str, JSONValue] = {
                "error": f"{call.name} is not available now",
                "state": self.machine.state,
            }
            self._note("result", f"{call.name} refused in {self.machine.state}")
            self.observer.tool_call(tool=call.name, result="refused", at=self._loop.time())
            await self.brain.tool_result(call, result)
            return
        self.observer.tool_call(tool=call.name, result="accepted", at=self._loop.time())
        reason = call.arguments.get("reason")
        if call.name == "transfer_to_human" and isinstance(reason, str):
            self._transfer_reason = reason
        entered = self.machine.send(f"tool:{call.name}")
        await self._enter(entered)
        if call.name == "lookup_order":
            assert self._tasks is not None
            self._tasks.create_task(self._lookup(call))
            return
        spec = self.flow.tools.get(call.name)
        if spec is not None and (spec.http is not None or call.name in self.services.tools):
            assert self._tasks is not None
            self._tasks.create_task(self._run_tool(call))
            return
        result = {"ok": True, "state": self.machine.state}
        if entered is not None and entered.instructions:
            result["instructions"] = entered.instructions
        self._note("result", f"{call.name} ok")
        await self.brain.tool_result(call, result)

    async def _on_set_language(self, call: ToolCall) -> None:
        """The caller chose a language (or the model heard one): texts, voice and grammar follow it."""
        wanted = str(call.arguments.get("language") or "")
        declared = self.flow.call_languages
        chosen = next((code for code in declared if code.lower() == wanted.lower()), None)
        if chosen is None:
            # A bare "sw" or "en" names the declared language it starts.
            chosen = next((c for c in declared if c.split("-")[0].lower() == wanted.lower()), None)
        result: dict[str, JSONValue]
        if chosen is None:
            result = {"ok": False, "error": f"language {wanted!r} is not offered here"}
            result["languages"] = list(declared)
            self._note("result", f"{SET_LANGUAGE_TOOL} refused: {wanted!r}")
            await self.brain.tool_result(call, result)
            return
        previous = self.language
        entered = None
        spoken: list[dict[str, str]] = []
        if chosen != previous:
            self.context["language"] = chosen
            self._note("language", f"{previous} -> {chosen} ({SET_LANGUAGE_TOOL})")
            # An order already found is spoken the new way from now on (digits, status, ETA).
            spoken = self._speak_orders() if self._found else []
            entered = self.machine.send(LANGUAGE_EVENT)
            await self._enter(entered)
        result = {
            "ok": True,
            "language": chosen,
            "state": self.machine.state,
            "instructions": f"Speak {language_name(chosen)} from now on.",
        }
        if spoken:
            result["order"] = dict(spoken[0])
            result["orders"] = [dict(each) for each in spoken]
        if entered is not None and entered.instructions:
            result["instructions"] = entered.instructions
        self._note("result", f"{SET_LANGUAGE_TOOL} ok")
        await self.brain.tool_result(call, result)

    async def _run_tool(self, call: ToolCall) -> None:
        """Perform the tool's action (`http:` or code handler); the result returns through the inbox."""
        started = self._loop.time()
        context = ToolCallContext(
            name=call.name,
            arguments=call.arguments,
            call_sid=self.call_sid,
            view=call_view(self.flow, self.context, self.machine.counters),
        )
        async with contextlib.AsyncExitStack() as stack:
            http = self.services.http
            if http is None:
                http = await stack.enter_async_context(httpx.AsyncClient())
            outcome = await perform(
                self.flow.tools[call.name],
                context,
                handler=self.services.tools.get(call.name),
                http=http,
            )
        how = "done" if outcome.ok else f"failed: {outcome.error}"
        self._note("tool", f"{call.name} {how} ({self._ms_since(started)} ms)")
        self.observer.tool_action(
            tool=call.name, succeeded=outcome.ok, started=started, ended=self._loop.time()
        )
        self._inbox.put_nowait(_ToolDone(call=call, outcome=outcome))

    async def _on_tool_done(self, done: _ToolDone) -> None:
        name, outcome = done.call.name, done.outcome
        results = self.context.setdefault("result", {})
        assert isinstance(results, dict)
        results[name] = outcome.context_value  # before the event: guards and templates read it
        entered = self.machine.send(f"{'done' if outcome.ok else 'failed'}:{name}")
        await self._enter(entered)
        result: dict[str, JSONValue] = (
            {"ok": True, "result": outcome.result} if outcome.ok else {"ok": False, "error": outcome.error}
        )
        result["state"] = self.machine.state
        if entered is not None and entered.instructions:
            result["instructions"] = entered.instructions
        self._note("result", f"{name} {'done' if outcome.ok else 'failed'}")
        if self._brain_alive:
            await self.brain.tool_result(done.call, result)

    async def _lookup(self, call: ToolCall) -> None:
        started = self._loop.time()
        raw = call.arguments.get("order_number")
        number = normalise_order_number(str(raw)) if raw else ""
        how = f"order_number={number}" if number else "phone"
        try:
            async with asyncio.timeout(self.options.lookup_deadline_s):
                found = await self._find(number)
        except (OrdersError, TimeoutError) as exc:
            reason = exc.reason if isinstance(exc, OrdersError) else "deadline exceeded"
            self._note("lookup", f"{how} failed: {reason} ({self._ms_since(started)} ms)")
            done = _LookupDone(
                call=call,
                event="lookup_failed",
                result={"found": False, "error": "the order system is not answering"},
            )
        else:
            if found.kind == "found":
                order = found.orders[0]
                self._found = found.orders
                spoken = self._speak_orders()
                summary = f"{len(found.orders)} order(s), first {order.order_number} {order.status}"
                result: dict[str, JSONValue] = {
                    "found": True,
                    "order": dict(spoken[0]),
                    "other_orders": [o.order_number for o in found.orders[1:]],
                    "orders": [dict(each) for each in spoken],
                }
                event: Literal["order_found", "order_not_found"] = "order_found"
            else:
                summary = "not found"
                result = {"found": False, "order_number": number or None}
                event = "order_not_found"
            self._note("lookup", f"{how} -> {summary} ({self._ms_since(started)} ms)")
            done = _LookupDone(call=call, event=event, result=result)
        self.observer.lookup(
            result=done.event,
            by="order_number" if number else "phone",
            started=started,
            ended=self._loop.time(),
        )
        self._inbox.put_nowait(done)

    def _speak_orders(self) -> list[dict[str, str]]:
        """The last lookup's orders in the call's language, into the context templates read."""
        spoken = [self._order_context(each) for each in self._found]
        self.context["order"] = spoken[0]
        self.context["orders"] = {
            "count": len(spoken),
            "numbers_spoken": _spoken_list([o["order_number_spoken"] for o in spoken], self.language),
        }
        return spoken

    def _order_context(self, order: Order) -> dict[str, str]:
        """Template variables of an order, spoken the way the flow's callers say them."""
        language = self.language
        return {
            **order.as_context(),
            "order_number_spoken": spoken_order_number(order.order_number, language),
            "status_text": status_words(order.status, language),
            "eta": spoken_eta(order.eta, language=language, timezone=self.flow.voice.timezone),
        }

    async def _find(self, number: str) -> LookupResult:
        if number:
            return await self.orders.by_order_number(
                number,
                caller=self.caller,
                require_phone_match=self.flow.orders.require_phone_match,
            )
        if self._prefetch is not None:
            return await asyncio.shield(self._prefetch)
        if not self.caller:
            return LookupResult(kind="not_found", orders=(), query="phone")
        return await self.orders.by_phone(self.caller)

    async def _on_lookup_done(self, done: _LookupDone) -> None:
        entered = self.machine.send(done.event)
        await self._enter(entered)
        result = dict(done.result)
        result["state"] = self.machine.state
        if entered is not None and entered.instructions:
            result["instructions"] = entered.instructions
        self._note("result", f"lookup_order {done.event}")
        if self._brain_alive:
            await self.brain.tool_result(done.call, result)

    # --- states -----------------------------------------------------------------------------

    async def _enter(self, entered: StateEntered | None) -> None:
        if entered is None:
            return
        self._note("state", f"{entered.previous} -> {entered.state} ({entered.event})")
        self.observer.state_entered(
            previous=entered.previous, state=entered.state, trigger=entered.event,
            at=self._loop.time(),
        )
        log.info(
            "state_entered", state=entered.state, previous=entered.previous, trigger=entered.event
        )
        self._keypad.use(keypad_plan(self.machine.state_spec()))
        if self._brain_alive:
            await self.brain.enter_state(
                StateBrief(
                    name=entered.state,
                    instructions=entered.instructions,
                    tools=self._state_tools(entered),
                    say=entered.say,
                    language=entered.language,
                )
            )
            self.transcript.told(
                self.now_ms(),
                state=entered.state,
                instructions=entered.instructions,
                tools=entered.tools,
            )
        said = await self._say(entered.say) if entered.say else None
        self._arm_silence()
        if entered.state == ESCALATION_STATE:
            assert self._tasks is not None
            if self._escalation_task is None:
                self._escalation_task = self._tasks.create_task(
                    self._escalate(said, reason=entered.event)
                )
                self._escalation_task.add_done_callback(
                    lambda _task: self._inbox.put_nowait(_EscalationDone())
                )
        elif entered.final:
            assert self._tasks is not None
            self._tasks.create_task(self._hang_up("flow ended", said))

    def _state_tools(self, entered: StateEntered) -> tuple[str, ...]:
        """The tools a brain may call in a state: the flow's, and set_language wherever the caller is heard."""
        if self._multilingual and entered.tools and SET_LANGUAGE_TOOL not in entered.tools:
            return (*entered.tools, SET_LANGUAGE_TOOL)
        return entered.tools

    async def _say(self, text: str) -> str:
        """Have `text` spoken (by the brain, or the session's own voice when the brain is gone)."""
        self._utterance_seq += 1
        utterance_id = f"flow-{self._utterance_seq}"
        self._heard_waiters[utterance_id] = self._loop.create_future()
        if self._brain_alive:
            await self.brain.say(text, utterance_id=utterance_id)
        else:
            await self._say_myself(text, utterance_id)
        return utterance_id

    async def _say_myself(self, text: str, utterance_id: str) -> None:
        # The caller is never left in silence: the session has a voice of its own.
        self._utterance_text[utterance_id] = text
        self._note("agent", f'"{text}"')
        try:
            pcm = await self._fallback_tts(text, self.options.sample_rate)
        except Exception as exc:  # the last voice failing must not end the call: a plain one stands in
            log.warning("fallback_voice_failed", error=str(exc))
            pcm = await _synthetic_voice(text, self.options.sample_rate)
        self._play(pcm, utterance_id)
        if self._pacer is not None:
            self._pacer.end_utterance(utterance_id)

    async def _until_heard(self, utterance_id: str | None, text: str | None = None) -> None:
        """Wait until an utterance has played out (or was cut); re-say it ourselves if the brain never did."""
        if utterance_id is None:
            return
        waiter = self._heard_waiters.get(utterance_id)
        if waiter is None or waiter.done():
            return
        started = self._start_waiters.setdefault(utterance_id, self._loop.create_future())
        if utterance_id in self._started_utterances and not started.done():
            started.set_result(None)
        try:
            async with asyncio.timeout(self.services.say_start_timeout_s):
                await asyncio.wait({started, waiter}, return_when=asyncio.FIRST_COMPLETED)
        except TimeoutError:
            if text is None:
                text = self._utterance_text.get(utterance_id)
            self._resolve_heard(utterance_id)
            if text is None:
                return
            self._note("error", "the brain did not speak in time: the session says it")
            utterance_id = f"{utterance_id}-own"
            waiter = self._heard_waiters[utterance_id] = self._loop.create_future()
            await self._say_myself(text, utterance_id)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_LONGEST_UTTERANCE_S):
                await waiter

    async def _escalate(self, said: str | None, *, reason: str) -> None:
        await self._until_heard(said, self.render(self.flow.states[ESCALATION_STATE].say or ""))
        settings = self.flow.escalation
        if settings is None:
            self._note("escalate", "the flow declares no escalation: ending the call")
            await self._hang_up("no escalation configured", None)
            return
        brief = self._handoff_brief(trigger=reason)
        http = self.services.http
        async with contextlib.AsyncExitStack() as stack:
            if http is None:
                http = await stack.enter_async_context(httpx.AsyncClient())
            self.escalation_result = await escalate(
                self,
                settings,
                rest=self.services.rest,
                http=http,
                reason=reason,
                now_iso=lambda: datetime.now(UTC).isoformat(timespec="seconds"),
                callback_timeout_s=self.services.callback_timeout_s,
                observer=self.observer,
                brief=brief,
                brief_secret=self.services.brief_secret,
            )
        if self.escalation_result == "failed":
            if self.stream_open:
                await self.speak(self.render(settings.unavailable_say))
            # Recorded as the flow routes it (to `ended` in the shipped flow); the call ends either way.
            entered = self.machine.send("escalation_failed")
            if entered is not None:
                self._note("state", f"{entered.previous} -> {entered.state} ({entered.event})")
            await self._hang_up("escalation failed", None)
        elif self.escalation_result == "callback":
            await self._hang_up("escalation callback", None)
        elif self.escalation_result == "dialled":
            self._finish_outcome()

    def _handoff_brief(self, *, trigger: str) -> HandoffBrief:
        """The call's summary for the person taking over, kept with the call record."""
        order = self.context.get("order")
        brief = build_brief(
            call_sid=self.call_sid,
            caller=self.caller,
            order=order if isinstance(order, Mapping) else {},
            caller_lines=self.transcript.of_kind("caller"),
            trigger=trigger,
            detail=self._transfer_reason,
            language=self.language,
            escalated_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        self.transcript.handoff = brief.as_json()
        self._note("escalate", f"brief: {brief.whisper()}")
        return brief

    # EscalationHost: what the strategies in call/escalation.py use.

    async def speak(self, text: str) -> None:
        said = await self._say(text)
        await self._until_heard(said, text)

    def render(self, template: LocalText) -> str:
        """A flow text in the call's language, filled from the call's context."""
        words = text_for(template, self.language, self.flow.default_language) or ""
        return render(words, call_view(self.flow, self.context, self.machine.counters))

    def note(self, kind: EntryKind, text: str) -> None:
        self._note(kind, text)

    async def close_stream(self, reason: str) -> None:
        await self._close_stream(reason)

    def offer_dial(self, dial: DialVerb) -> asyncio.Future[None]:
        self.pending_dial = dial
        for listener in self.dial_listeners:
            listener(dial)
        self._dial_answered = self._loop.create_future()
        return self._dial_answered

    def mute_agent(self) -> None:
        self._muted = True
        if self._pacer is not None:
            self._pacer.flush()

    @property
    def stream_open(self) -> bool:
        return self._media is not None and not self._media.closed and self._closing_reason is None

    async def _hang_up(self, reason: str, said: str | None) -> None:
        """End the call for the caller too: closing the stream alone would leave them in dead air."""
        await self._until_heard(said)
        if self._pacer is not None:
            await self._pacer.wait_idle()
        rest = self.services.rest
        if self._caller_left:
            self._note("hangup", f"the caller has left ({reason}): closing the stream")
        elif rest is None:
            self._note(
                "hangup", f"agent ended the call ({reason}); no REST key: closing the stream only"
            )
        else:
            try:
                async with asyncio.timeout(self.services.rest_timeout_s):
                    await rest.hangup(self.call_sid)
            except (SautikitError, TimeoutError) as exc:
                self._note("error", f"REST hang-up failed: {_rest_reason(exc)}; closing the stream")
            else:
                self._note("hangup", f"agent ended the call ({reason}) through the REST API")
        await self._close_stream(reason)

    async def _close_stream(self, reason: str) -> None:
        self._closing_reason = reason
        if self._media is not None and not self._media.closed:
            await self._media.close(reason=reason)

    async def _on_stream_closed(self) -> None:
        self._cancel_silence()
        if self._closing_reason is None:
            self._caller_left = True
            self._note("hangup", "caller hung up (stream closed by the platform)")
            await self._enter(self.machine.send("stream_stopped"))
        else:
            self._note("stream", f"closed ({self._closing_reason})")

    async def _on_caller_hung_up(self) -> None:
        """The platform says the caller has gone: stop talking now and close, whatever was queued.

        Nobody is listening, so the flow's route is recorded but nothing more is said, and the stream
        closes at once (before, a reply already queued played on for seconds to an empty line)."""
        self._note("hangup", "caller hung up (the platform reported the call completed)")
        self._cancel_silence()
        self.mute_agent()
        escalating = self._escalation_task is not None and not self._escalation_task.done()
        if escalating or self._closing_reason is not None:
            return  # a hand-off under way ends by its own path (a Dial answered or timed out)
        entered = self.machine.send("hangup")
        if entered is not None:
            self._note("state", f"{entered.previous} -> {entered.state} ({entered.event})")
        await self._close_stream("the caller hung up")

    def _record_lost_stream(self) -> None:
        if self._closing_reason is not None or self.machine.is_final:
            return
        self._closing_reason = "connection lost"
        self._caller_left = True
        self._note("hangup", "caller hung up (connection lost)")
        entered = self.machine.send("stream_stopped")
        if entered is not None:
            self._note("state", f"{entered.previous} -> {entered.state} ({entered.event})")

    async def _on_shutting_down(self) -> None:
        self._note("call", "the service is shutting down")
        entered = self.machine.send("shutdown")
        if entered is not None:
            await self._enter(entered)
            return
        escalating = self._escalation_task is not None and not self._escalation_task.done()
        if not escalating and not self.machine.is_final and self._tasks is not None:
            self._tasks.create_task(self._hang_up("the service is shutting down", None))

    async def _on_brain_failure(self, failure: BrainFailure) -> None:
        self._brain_alive = False
        self._note("error", f"brain failed: {failure.reason}")
        self.observer.brain_failed(reason=failure.reason, at=self._loop.time())
        await self._enter(self.machine.send("brain_failed"))

    # --- bookkeeping ------------------------------------------------------------------------

    def _finish_outcome(self) -> None:
        if self.finished.is_set():
            return
        outcome: Outcome
        if self.escalation_result in ("dialled", "supervised", "callback"):
            outcome = "escalated"
        elif self.outbound_result == "voicemail":
            outcome = "voicemail"
        elif self._order_delivered:
            outcome = "resolved"
        elif self._cut_short:
            outcome = "interrupted"
        elif self._caller_left:
            outcome = "abandoned"
        else:
            outcome = "failed"
        self.transcript.outcome = outcome
        self._note("outcome", f"{outcome} (final state {self.machine.state})")
        log.info("call_finished", outcome=outcome, state=self.machine.state)
        self.observer.call_finished(
            outcome=outcome, final_state=self.machine.state, at=self._loop.time()
        )
        self.finished.set()

    def _call_info(self) -> CallInfo:
        flow = self.flow
        return CallInfo(
            call_sid=self.call_sid,
            caller=self.caller,
            sample_rate=self.options.sample_rate,
            system_prompt=self.render(flow.system_prompt),
            voice=flow.voice.name,
            language=self.language,
            languages=flow.call_languages,
            tools=tuple(
                ToolDeclaration(
                    name=name,
                    description=spec.description,
                    parameters=cast(Mapping[str, JSONValue], spec.parameters),
                )
                for name, spec in flow.tools.items()
            )
            + ((_set_language_tool(flow.call_languages),) if self._multilingual else ()),
            caller_orders=self._prefetched_count(),
        )

    def _prefetched_count(self) -> int | None:
        """How many orders the webhook's lookup by `From` found, if it has answered (never waited for)."""
        prefetch = self._prefetch
        if prefetch is None or not prefetch.done() or prefetch.cancelled():
            return None
        if prefetch.exception() is not None:
            return None
        return len(prefetch.result().orders)

    def now_ms(self) -> int:
        return round((self._loop.time() - self._t0) * 1000)

    def _ms_since(self, started: float) -> int:
        return round((self._loop.time() - started) * 1000)

    def _note(self, kind: EntryKind, text: str) -> None:
        self.transcript.add(self.now_ms(), kind, text)


async def _synthetic_voice(text: str, rate: int) -> bytes:
    """Deterministic speech-like audio: the voice of last resort, and the one tests use."""
    return synthesize_speech(text, rate=rate)


def _set_language_tool(languages: tuple[str, ...]) -> ToolDeclaration:
    """The built-in tool a model calls when the caller asks for, or keeps speaking, another language."""
    names = ", ".join(language_name(code) for code in languages)
    return ToolDeclaration(
        name=SET_LANGUAGE_TOOL,
        description=(
            f"Switch the call to another language ({names}) when the caller asks for it or keeps "
            "speaking it; then answer in that language."
        ),
        parameters={
            "type": "object",
            "properties": {"language": {"type": "string", "enum": list(languages)}},
            "required": ["language"],
        },
    )


def _spoken_list(items: list[str], language: str) -> str:
    """"a, b and c": several order numbers in one sentence ("a, b na c" in Swahili)."""
    joiner = " na " if language.split("-")[0].lower() == "sw" else " and "
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + joiner + items[-1]


def _rest_reason(exc: Exception) -> str:
    if isinstance(exc, SautikitError):
        return f"{exc.code or exc.status} (request {exc.request_id or '-'})"
    return "timed out"


class _CallOver(Exception):
    """Leaves the call's TaskGroup, cancelling its remaining tasks."""


def _consume_exception(task: asyncio.Future[LookupResult]) -> None:
    # A failed prefetch is not an error by itself: the lookup that needs it reports the failure.
    if not task.cancelled():
        task.exception()


def _safe_metadata(meta: StreamMetadata) -> dict[str, object]:
    return {
        "call_sid": meta.call_sid,
        "sample_rate": meta.sample_rate,
        "channels": meta.channels,
    }
