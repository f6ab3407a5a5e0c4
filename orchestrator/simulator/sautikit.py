"""A fake Sautikit: places a call against the service exactly as the platform would, over real sockets.

It POSTs the voice webhook (form or JSON), executes the XML answer (`<Say>` takes its speaking time, `<Stream>`
opens the media WebSocket with the `audio.drachtio.org` subprotocol and a metadata frame, `<Dial>` is dialled),
sends the caller's audio in 20 ms frames in real time — speech from the call script, silence between — plays the
agent's audio out of a buffer that `{"type":"killAudio"}` empties, fires stream status callbacks, and re-POSTs the
webhook on lifecycle edges. It records what each side heard as a two-track recording.

Time is the event loop's: tests fast-forward it (looptime), so a 60-second call takes a fraction of a second; the
demo runs it on the real clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
import uuid
from array import array
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal
from urllib.parse import quote_plus

import aiohttp
import numpy as np

from orchestrator.audio.synth import noise_burst, synthesize_speech
from orchestrator.audio.wav import interleave
from orchestrator.script import (
    AgentTurn,
    CallerTurn,
    CallScript,
    HangupTurn,
    NoiseTurn,
    PressTurn,
    SayStep,
    SilenceTurn,
)
from orchestrator.simulator.rest_api import FakeCall, FakeSautikitState
from orchestrator.telephony.signing import sign_webhook
from orchestrator.telephony.stream import SUBPROTOCOL
from orchestrator.telephony.xml import DialVerb, SayVerb, StreamSpec, parse_response

__all__ = ["Answer", "FakeDialler", "FakeSautikit", "SimulatedCall", "SimulatorOptions"]

# How the callee of an outbound call answers it.
Answer = Literal["answer", "voicemail", "no_answer", "busy", "failed"]
# How long the phone rings before each kind of not-answered ends; a voicemail picks up after a few rings.
_RING_MS: Mapping[str, int] = {"no_answer": 30_000, "busy": 2_000, "failed": 500, "voicemail": 15_000}
_VOICEMAIL_GREETING = (
    "Hello, you have reached Wanjiru. I cannot take your call right now. "
    "Please leave your name, your number and a short message after the tone, and I will call you back."
)
# What a person says on picking up; it is not a line of the script (the agent has not spoken yet).
_HELLO = "Hello?"
_BEEP_HZ = 1000.0
_BEEP_MS = 400

_FRAME_MS = 20
# Below this RMS a played agent frame counts as silence (the pacer pads utterance ends with zeros).
_AUDIBLE_RMS = 200.0
# A gap this long ends an agent utterance for the live view (sentences have shorter pauses inside).
_AGENT_PAUSE_MS = 500
_CALLER_PITCH_HZ = 190.0
_PLATFORM_EPOCH = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class SimulatorOptions:
    """How the fake platform behaves; the defaults are Sautikit's."""

    voice_path: str = "/voice"
    sample_rate: int = 16000
    say_ms_per_char: int = 60
    # A caller waits at most this long for the agent before speaking anyway.
    max_wait_ms: int = 20_000
    # After the script's last line, hang up if the agent has done nothing for this long.
    idle_hangup_ms: int = 15_000
    max_call_ms: int = 300_000
    webhook_secret: str | None = None
    # Where public URLs really live, like a hosts file: {"https://agent.example.test": "http://127.0.0.1:8080"}.
    hosts: Mapping[str, str] = field(default_factory=dict)
    # What the platform streams: "mono" (the caller; with echo_gain > 0 also the agent's own voice, as a
    # both_tracks mono mix does) or "stereo" (caller and agent on separate interleaved channels).
    mix: Literal["mono", "stereo"] = "mono"
    echo_gain: float = 0.0
    echo_delay_ms: int = 120
    # The fake REST API's state, when the service under test talks to one: the call is registered there, a
    # REST hang-up ends it, a supervision brings a supervisor in, and the call record is closed at the end.
    rest: FakeSautikitState | None = None
    # Ask the service for instructions again when it closes the stream (the docs' path to a <Dial>). A
    # production integrator saw staging not do it: turn it off to rehearse that.
    repost_on_stream_end: bool = True
    # How the caller's speech is made: deterministic speech-like audio unless a synthesiser is given.
    voice: Callable[[str, int], bytes] | None = None
    # The caller's audio reaches the service in bursts of this many 20 ms frames, back to back, as it does
    # from an overloaded host or network (1: one frame every 20 ms, the platform's normal pace).
    inbound_burst_frames: int = 1
    # Tick every call's media on one shared 20 ms grid of loop time, as a media server's one timer does
    # (FreeSWITCH's soft timer wakes all its sessions together): many simulated calls then wake the loop once
    # per tick between them, not once each. Off, each call ticks from the moment its stream opened.
    shared_tick: bool = False


@dataclass(slots=True, kw_only=True)
class SimulatedCall:
    """What the platform saw of one call."""

    call_sid: str
    log: list[str] = field(default_factory=list)
    xml_answers: list[str] = field(default_factory=list)
    caller_track: bytearray = field(default_factory=bytearray)
    agent_track: bytearray = field(default_factory=bytearray)
    kill_audio: int = 0
    # Loop times, for latency figures: when each caller turn's audio started, when each killAudio arrived.
    caller_audio_started_at: list[float] = field(default_factory=list)
    kill_audio_at: list[float] = field(default_factory=list)
    agent_frame_arrivals: list[float] = field(default_factory=list)
    # Per 20 ms frame of the tracks, for exact (not tick-rounded) latencies: when each caller frame left the
    # platform, and when the agent frame played at that tick had reached it (its last byte; NaN for a tick
    # that played silence because nothing had arrived).
    caller_frame_sent_at: array[float] = field(default_factory=lambda: array("d"))
    agent_frame_arrived_at: array[float] = field(default_factory=lambda: array("d"))
    # The platform's own punctuality: 20 ms ticks of the media stream, and those that ran a whole frame or
    # more behind their schedule (an overloaded simulator, not the service, made those late).
    ticks: int = 0
    late_ticks: int = 0
    dialed: str | None = None
    ended_by: Literal["caller", "platform", "agent", "timeout", ""] = ""
    # Outbound calls: how the callee answered, and (a voicemail) how much agent audio it recorded.
    answer: Answer | None = None
    voicemail_recorded_ms: int = 0
    placed_at: float = 0.0  # loop time the platform started ringing (outbound)


class FakeSautikit:
    """Places simulated calls at a service's voice webhook."""

    def __init__(
        self,
        base_url: str,
        *,
        options: SimulatorOptions | None = None,
        on_line: Callable[[str], None] | None = None,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._options = options or SimulatorOptions()
        self._on_line = on_line

    async def call(self, script: CallScript, *, call_sid: str | None = None) -> SimulatedCall:
        sid = call_sid or script.call_sid or f"HD_{uuid.uuid4().hex[:12]}"
        async with aiohttp.ClientSession() as http:
            run = _CallRun(http, self._base_url, script, sid, self._options, self._on_line)
            await run.run()
            return run.result

    async def ring(
        self, record: FakeCall, voice_url: str, *, answer: Answer, script: CallScript | None = None
    ) -> SimulatedCall:
        """Carry an outbound call placed with `POST /v1/calls`: ring `record.remote_e164`, then answer it as
        told — a person speaking `script`'s caller turns, a voicemail greeting and its beep — or report
        it not answered with a final `callSessionState` POSTed to `voice_url`."""
        callee = script or CallScript(title="outbound call", turns=[])
        callee = callee.model_copy(
            update={"caller": record.local_e164, "callee": record.remote_e164}
        )
        async with aiohttp.ClientSession() as http:
            run = _CallRun(
                http, self._base_url, callee, record.session_id, self._options, self._on_line
            )
            await run.ring(record, voice_url, answer)
            return run.result


class FakeDialler:
    """Rings each number the service calls through the fake REST API, the way its plan says.

        dialler = FakeDialler(platform, rest_state, answers={"+254712345678": ["no_answer", "answer"]})
        ...  # the service places calls (POST /v1/calls); each rings in the background
        calls = await dialler.wait_for(2)
    """

    def __init__(
        self,
        platform: FakeSautikit,
        state: FakeSautikitState,
        *,
        answers: Mapping[str, list[Answer]],
        script: CallScript | None = None,
    ) -> None:
        self._platform = platform
        self._answers = {number: list(plan) for number, plan in answers.items()}
        self._script = script
        self._tasks: list[asyncio.Task[SimulatedCall]] = []
        self._placed = asyncio.Condition()
        state.on_call_created = self._ring

    def _ring(self, record: FakeCall, voice_url: str) -> None:
        plan = self._answers.get(record.remote_e164) or ["answer"]
        answer = plan.pop(0) if len(plan) > 1 else plan[0]
        task = asyncio.get_running_loop().create_task(
            self._platform.ring(record, voice_url, answer=answer, script=self._script)
        )
        self._tasks.append(task)
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self._placed:
            self._placed.notify_all()

    async def wait_for(self, count: int) -> list[SimulatedCall]:
        """The first `count` calls placed, once each has ended (as the platform saw them)."""
        async with self._placed:
            await self._placed.wait_for(lambda: len(self._tasks) >= count)
        return list(await asyncio.gather(*self._tasks[:count]))

    @property
    def placed(self) -> int:
        return len(self._tasks)


class _CallRun:
    def __init__(
        self,
        http: aiohttp.ClientSession,
        base_url: str,
        script: CallScript,
        call_sid: str,
        options: SimulatorOptions,
        on_line: Callable[[str], None] | None,
    ) -> None:
        self.http = http
        self.base_url = base_url
        self.script = script
        self.options = options
        self.on_line = on_line
        self.result = SimulatedCall(call_sid=call_sid)
        self.loop = asyncio.get_running_loop()
        self.t0 = self.loop.time()
        self.rate = options.sample_rate
        self.frame_bytes = self.rate * 2 * _FRAME_MS // 1000
        self.silence = bytes(self.frame_bytes)  # one shared silent frame, not a new one every tick
        self.agent_buffer = bytearray()
        # When the buffered bytes arrived: (running count of agent bytes received up to the end of a message,
        # loop time it arrived), oldest first; `buffer_start` is that count at the buffer's first byte.
        self.buffer_arrivals: deque[tuple[int, float]] = deque()
        self.agent_bytes_in = 0
        self.buffer_start = 0
        self.status_url: str | None = None
        self.record: FakeCall | None = None
        self.voice_url = base_url + options.voice_path
        self.direction = "inbound"
        self.voicemail = False
        self.supervisions_seen = 0
        # Live only (on_line, never the log): when the agent's audio started, and how long it has been quiet.
        self.agent_since_ms: int | None = None
        self.agent_quiet_ms = 0

    # --- webhook and XML --------------------------------------------------------------------

    async def run(self) -> None:
        rest = self.options.rest
        self.record = None
        if rest is not None:
            # The platform's clock runs on the loop's, so records are the same on every (fast-forwarded) run.
            loop, t0 = self.loop, self.loop.time()
            rest.now = lambda: _PLATFORM_EPOCH + timedelta(seconds=loop.time() - t0)
            self.record = rest.add_call(
                session_id=self.result.call_sid,
                local_e164=self.script.callee,
                remote_e164=self.script.caller,
                status="answered",
                answered_at=rest.now(),
                ended_at=None,
            )
        try:
            xml = await self.post_webhook("ringing")
            await self.execute(xml)
        finally:
            self.close_record()

    async def ring(self, record: FakeCall, voice_url: str, answer: Answer) -> None:
        """An outbound call: rings, then is answered (a person or a voicemail) or ends not answered."""
        rest = self.options.rest
        self.record, self.voice_url, self.direction = record, voice_url, "outbound"
        self.result.answer = answer
        self.result.placed_at = self.loop.time()
        self.note(f"ringing {record.remote_e164} (outbound from {record.local_e164})")
        await asyncio.sleep(_RING_MS.get(answer, 3_000) / 1000)
        if answer in ("no_answer", "busy", "failed"):
            record.status = answer
            if rest is not None:
                record.ended_at = rest.now()
            self.note(f"not answered: {answer}")
            self.result.ended_by = "platform"
            await self.post_webhook({"no_answer": "no-answer"}.get(answer, answer))
            return
        self.voicemail = answer == "voicemail"
        record.status = "answered"
        if rest is not None:
            record.answered_at = rest.now()
        self.note("answered by voicemail" if self.voicemail else "answered")
        try:
            await self.execute(await self.post_webhook("answered"))
        finally:
            self.close_record()

    def close_record(self) -> None:
        """The platform's record of the call once it is over: status, duration, cost."""
        record = self.record
        if record is None or record.status in ("completed", "failed", "canceled"):
            return
        rest = self.options.rest
        assert rest is not None
        record.status = "completed"
        record.ended_at = rest.now()
        minutes = (record.ended_at - (record.answered_at or record.ended_at)).total_seconds() / 60
        record.cost_minor = max(1, round(minutes * rest.inbound_minute_price_minor))

    def rest_ended(self) -> bool:
        """Did the service hang the call up through the REST API? Also notes supervisors joining."""
        rest = self.options.rest
        if rest is None or self.record is None:
            return False
        for supervision in rest.supervisions[self.supervisions_seen :]:
            self.supervisions_seen += 1
            self.note(f"supervisor {supervision.supervisor_number} joins ({supervision.mode})")
        return self.record.status in ("completed", "canceled")

    async def post_webhook(self, state: str, *, digits: str | None = None) -> str:
        fields = {
            "CallSid": self.result.call_sid,
            "From": self.script.caller,
            "To": self.script.callee,
            "direction": self.direction,
            "callSessionState": state.capitalize(),
            "isActive": "true" if state in ("ringing", "answered", "active") else "false",
        }
        if not self.script.caller:  # a withheld number: Sautikit leaves the field out
            del fields["From"]
        if digits is not None:
            fields["Digits"] = digits
        if self.script.webhook == "json":
            body = json.dumps(fields).encode()
            content_type = "application/json"
        else:
            body = "&".join(f"{k}={quote_plus(v)}" for k, v in fields.items()).encode()
            content_type = "application/x-www-form-urlencoded"
        headers = self.signed({"Content-Type": content_type}, body)
        async with self.http.post(
            self.resolve(self.voice_url), data=body, headers=headers
        ) as response:
            text = await response.text()
            if response.status != 200:
                self.note(f"webhook answered HTTP {response.status}: {text}")
                return ""
            self.result.xml_answers.append(text)
            return text

    async def execute(self, xml: str) -> None:
        if not xml:
            self.result.ended_by = "platform"
            return
        for verb in parse_response(xml):
            if isinstance(verb, SayVerb):
                self.note(f'say "{verb.text}"')
                await asyncio.sleep(len(verb.text) * self.options.say_ms_per_char / 1000)
            elif isinstance(verb, StreamSpec):
                self.status_url = verb.status_callback
                await self.stream(verb)
                return  # with connect="true" the stream owns the call until it ends
            elif isinstance(verb, DialVerb):
                self.result.dialed = verb.number
                self.note(f"dial {verb.number} (callerId {verb.caller_id})")
                self.result.ended_by = self.result.ended_by or "agent"
                return
        self.note("no more instructions: platform hangs up")
        self.result.ended_by = self.result.ended_by or "platform"

    async def status(self, event: str) -> None:
        if not self.status_url:
            return
        body = json.dumps({"callSid": self.result.call_sid, "event": event}).encode()
        headers = self.signed({"Content-Type": "application/json"}, body)
        with contextlib.suppress(aiohttp.ClientError):
            async with self.http.post(
                self.resolve(self.status_url), data=body, headers=headers
            ) as response:
                await response.read()

    def signed(self, headers: dict[str, str], body: bytes) -> dict[str, str]:
        """Sign a request the way Sautikit does when the number has a signing secret."""
        if self.options.webhook_secret:
            headers["X-Sautikit-Signature"] = sign_webhook(
                self.options.webhook_secret.encode(), body, now=time.time()
            )
        return headers

    # --- the media stream -------------------------------------------------------------------

    async def stream(self, spec: StreamSpec) -> None:
        try:
            ws = await self.http.ws_connect(
                self.resolve(spec.url), protocols=(SUBPROTOCOL,), autoping=True
            )
        except aiohttp.WSServerHandshakeError as exc:
            self.note(f"stream rejected: HTTP {exc.status}")
            await self.status("stream-error")
            return
        async with ws:
            await ws.send_str(json.dumps({
                "callSid": self.result.call_sid,
                "streamSid": f"MZ{self.result.call_sid}",
                "from": self.script.caller,
                "to": self.script.callee,
                "sampleRate": spec.sample_rate,
                "mixType": self.options.mix,
            }))
            self.note("stream connected")
            await self.status("stream-started")
            reader = self.loop.create_task(self.read(ws))
            try:
                hung_up = await self.talk(ws, reader)
            finally:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader
        await self.status("stream-stopped")
        if hung_up:
            await self.post_webhook("completed")
            return
        # The stream ended from the service's side: ask for what to do next, like the platform.
        self.note("stream closed by the service")
        if not self.options.repost_on_stream_end:
            self.note("platform asks for nothing more: the caller hears silence")
            self.result.ended_by = "platform"
            return
        await self.execute(await self.post_webhook("active"))

    async def read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type is aiohttp.WSMsgType.BINARY:
                now = self.loop.time()
                self.agent_buffer += msg.data
                self.agent_bytes_in += len(msg.data)
                self.buffer_arrivals.append((self.agent_bytes_in, now))
                self.result.agent_frame_arrivals.append(now)
            elif msg.type is aiohttp.WSMsgType.TEXT:
                with contextlib.suppress(ValueError):
                    command = json.loads(msg.data)
                    if isinstance(command, dict) and command.get("type") == "killAudio":
                        self.result.kill_audio += 1
                        self.result.kill_audio_at.append(self.loop.time())
                        dropped = len(self.agent_buffer) * 1000 // (2 * self.rate)
                        self.agent_buffer.clear()
                        self.buffer_arrivals.clear()
                        self.buffer_start = self.agent_bytes_in
                        self.note(f"killAudio: dropped {dropped} ms of buffered agent audio")

    async def talk(self, ws: aiohttp.ClientWebSocketResponse, reader: asyncio.Task[None]) -> bool:
        """Tick every 20 ms: send a caller frame, play an agent frame. True when the caller hung up."""
        caller = _Caller(
            self.script,
            self.options,
            self.rate,
            voicemail=self.voicemail,
            picked_up=self.direction == "outbound" and not self.voicemail,
        )
        if self.direction == "outbound":
            self.note("voicemail greeting plays" if self.voicemail else f'callee says "{_HELLO}"')
        silence = self.silence
        options = self.options
        echo_frames = options.echo_delay_ms // _FRAME_MS
        echo_line: list[bytes] = [silence] * echo_frames  # what the agent said, echo_delay_ms ago
        burst: list[bytes] = []
        # The usual platform (mono, no echo, one frame per message) sends the caller's frame as it is: no
        # echo line, mix or burst to keep per tick. Hundreds of calls tick in the load bench's one process,
        # on the cores the service under test also needs.
        plain = options.mix == "mono" and options.echo_gain <= 0 and options.inbound_burst_frames == 1
        loop, result, t0 = self.loop, self.result, self.t0
        frame_bytes = self.frame_bytes
        watching = self.on_line is not None
        frame_s = _FRAME_MS / 1000
        shared = options.shared_tick
        # On the shared grid a tick is a whole multiple of the frame, counted, not summed: no call drifts off it.
        tick = math.ceil(self.loop.time() / frame_s) if shared else 0
        next_tick = tick * frame_s if shared else self.loop.time()
        if next_tick > self.loop.time():
            await asyncio.sleep(next_tick - self.loop.time())
        while True:
            now = loop.time()
            result.ticks += 1
            if now - next_tick >= frame_s:
                result.late_ticks += 1
            if reader.done() or ws.closed:
                result.ended_by = "agent"
                return False
            if self.record is not None and self.rest_ended():
                self.note("call hung up through the REST API")
                result.ended_by = "agent"
                await ws.close()
                return True
            played = self.play_agent_frame()
            # An empty buffer plays the shared silent frame: nothing to measure (most ticks of a call).
            audible = played is not silence and _rms(played) >= _AUDIBLE_RMS
            if audible and caller.recording:
                result.voicemail_recorded_ms += _FRAME_MS
            if watching:
                self.watch_agent(audible)
            now_ms = round((now - t0) * 1000)  # self.elapsed_ms(), read once per tick
            action = caller.step(now_ms, audible=audible)
            if action is not None:
                if action == "hangup":
                    self.note("caller hangs up")
                    result.ended_by = "caller"
                    await ws.close()
                    return True
                if action == "timeout":
                    self.note("caller gives up: call too long or agent idle")
                    result.ended_by = "timeout"
                    await ws.close()
                    return True
                if action.startswith(("say:", "noise:")):
                    result.caller_audio_started_at.append(loop.time())
            if action == "beeped":
                self.note("voicemail greeting over (beep): recording")
            elif action is not None and action.startswith("say:"):
                self.note(f'caller says "{action[4:]}"')
            elif action is not None and action.startswith("webhook-keys:"):
                self.note(f"caller presses {action[13:]} (Digits on the voice webhook)")
                await self.post_webhook("active", digits=action[13:])
            elif caller.keys and (key := caller.due_key(now_ms)) is not None:
                if caller.keys_sent == 1:
                    self.note(f"caller presses {caller.pressing}")
                with contextlib.suppress(ConnectionError):
                    # The shape mod_audio_fork-based platforms send (docs/keypad.md).
                    await ws.send_str(json.dumps({"event": "dtmf", "dtmf": {"digit": key}}))
            elif action is not None and action.startswith("noise:"):
                self.note(f"noise on the line: {action[6:]}")
            frame = (caller.next_frame(frame_bytes) if caller.speech else None) or silence
            result.caller_track += frame
            result.caller_frame_sent_at.append(loop.time())
            try:
                if plain:
                    await ws.send_bytes(frame)
                else:
                    echo_line.append(played)
                    burst.append(self.mix(frame, echo_line.pop(0), played))
                    if len(burst) >= options.inbound_burst_frames:
                        for wire in burst:
                            await ws.send_bytes(wire)
                        burst.clear()
            except ConnectionError:
                result.ended_by = "agent"
                return False
            tick += 1
            next_tick = tick * frame_s if shared else next_tick + frame_s
            await asyncio.sleep(max(0.0, next_tick - loop.time()))

    def resolve(self, url: str) -> str:
        """Map a public URL (https/wss) to where that host really listens, as a hosts file would."""
        for public, local in self.options.hosts.items():
            public_host = public.split("://", 1)[-1]
            local_host = local.split("://", 1)[-1]
            for scheme in ("https", "http", "wss", "ws"):
                prefix = f"{scheme}://{public_host}"
                if url.startswith(prefix):
                    local_scheme = "ws" if scheme.startswith("ws") else "http"
                    return f"{local_scheme}://{local_host}{url[len(prefix):]}"
        return url

    def mix(self, caller: bytes, echo: bytes, played: bytes) -> bytes:
        """The inbound frame as the platform forks it."""
        if self.options.mix == "stereo":
            return interleave(caller, played)
        if self.options.echo_gain <= 0:
            return caller
        mixed = np.frombuffer(caller, "<i2").astype(np.float32)
        mixed += self.options.echo_gain * np.frombuffer(echo, "<i2").astype(np.float32)
        return np.clip(mixed, -32768, 32767).astype("<i2").tobytes()

    def play_agent_frame(self) -> bytes:
        if not self.agent_buffer:
            self.result.agent_track += self.silence
            self.result.agent_frame_arrived_at.append(math.nan)
            return self.silence
        frame = bytes(self.agent_buffer[: self.frame_bytes])
        del self.agent_buffer[: self.frame_bytes]
        # The frame was whole when its last byte arrived; messages wholly played are forgotten.
        self.buffer_start += len(frame)
        arrivals = self.buffer_arrivals
        while arrivals and arrivals[0][0] < self.buffer_start:
            arrivals.popleft()
        self.result.agent_frame_arrived_at.append(arrivals[0][1] if arrivals else math.nan)
        if arrivals and arrivals[0][0] == self.buffer_start:
            arrivals.popleft()
        if len(frame) < self.frame_bytes:
            frame += bytes(self.frame_bytes - len(frame))
        self.result.agent_track += frame
        return frame

    def watch_agent(self, audible: bool) -> None:
        """Tell a live watcher when the agent speaks: the platform hears audio, not words."""
        if self.on_line is None:
            return
        now = self.elapsed_ms()
        if audible:
            if self.agent_since_ms is None:
                self.agent_since_ms = now
                self.on_line(f"[{_clock(now)}] agent speaking")
            self.agent_quiet_ms = 0
        elif self.agent_since_ms is not None:
            self.agent_quiet_ms += _FRAME_MS
            if self.agent_quiet_ms >= _AGENT_PAUSE_MS:
                spoke_ms = now - self.agent_quiet_ms - self.agent_since_ms
                self.on_line(f"[{_clock(now)}] agent quiet after {spoke_ms / 1000:.1f} s of speech")
                self.agent_since_ms = None

    def elapsed_ms(self) -> int:
        return round((self.loop.time() - self.t0) * 1000)

    def note(self, text: str) -> None:
        line = f"[{_clock(self.elapsed_ms())}] {text}"
        self.result.log.append(line)
        if self.on_line is not None:
            self.on_line(line)


class _Caller:
    """The caller's side of the script: when to speak, barge in, stay silent or hang up."""

    def __init__(
        self,
        script: CallScript,
        options: SimulatorOptions,
        rate: int,
        *,
        voicemail: bool = False,
        picked_up: bool = False,
    ) -> None:
        self.options = options
        self.rate = rate
        self.voice = options.voice or (
            lambda text, r: synthesize_speech(text, rate=r, pitch_hz=_CALLER_PITCH_HZ)
        )
        self.turns: list[
            tuple[CallerTurn | PressTurn | HangupTurn | SilenceTurn | NoiseTurn, bool]
        ] = []
        # A script with no agent turns leaves the agent's side to a real brain: then the caller, like a
        # person, waits to hear the agent before each line.
        unscripted_agent = not any(isinstance(turn, AgentTurn) for turn in script.turns)
        # On a call the shop placed, the flow speaks first (the callee only said hello): wait for it.
        agent_speaks = unscripted_agent or picked_up
        for turn in script.turns:
            if isinstance(turn, AgentTurn):
                agent_speaks = agent_speaks or any(isinstance(s, SayStep) for s in turn.agent)
            else:
                self.turns.append((turn, agent_speaks))
                agent_speaks = unscripted_agent
        self.index = 0
        self.speech = bytearray()
        self.speaking = False
        self.turn_started_ms: int | None = None
        self.agent_heard_ms = 0  # agent speech played since the caller last spoke
        self.quiet_since_ms: int | None = None
        self.last_activity_ms = 0
        # Keys of the current press turn still to send, each `gap_ms` after the one before.
        self.pressing = ""
        self.keys: list[str] = []
        self.keys_sent = 0
        self.key_gap_ms = 0
        self.next_key_ms = 0
        # A voicemail plays its greeting and beep at once, then records whatever it hears.
        self.recording = False
        self.voicemail = voicemail
        if voicemail:
            self.turns = []
            self.speech = bytearray(self.voice(_VOICEMAIL_GREETING, rate) + _beep(rate))
            self.speaking = True
        elif picked_up:
            self.speech = bytearray(self.voice(_HELLO, rate))
            self.speaking = True

    def due_key(self, now_ms: int) -> str | None:
        """The next key of a press turn, when its time has come."""
        if not self.keys or now_ms < self.next_key_ms:
            return None
        self.next_key_ms = now_ms + self.key_gap_ms
        self.keys_sent += 1
        self.last_activity_ms = now_ms
        return self.keys.pop(0)

    def step(self, now_ms: int, *, audible: bool) -> str | None:
        if audible:
            self.agent_heard_ms += _FRAME_MS
            self.quiet_since_ms = None
            self.last_activity_ms = now_ms
        elif self.quiet_since_ms is None:
            self.quiet_since_ms = now_ms
        if now_ms >= self.options.max_call_ms:
            return "timeout"
        if self.speech or self.keys:
            return None
        if self.voicemail and not self.recording:
            self.recording = True
            self.last_activity_ms = now_ms
            return "beeped"
        if self.speaking:
            # The caller just finished a sentence: what the agent says next is a reply to it.
            self.speaking = False
            self.agent_heard_ms = 0
            self.quiet_since_ms = now_ms
        if self.turn_started_ms is None:
            self.turn_started_ms = now_ms
        if self.index >= len(self.turns):
            if now_ms - self.last_activity_ms >= self.options.idle_hangup_ms:
                return "timeout"
            return None
        turn, expects_agent = self.turns[self.index]
        waited = now_ms - self.turn_started_ms
        quiet_ms = 0 if self.quiet_since_ms is None else now_ms - self.quiet_since_ms
        if isinstance(turn, SilenceTurn):
            if waited >= turn.silence_ms:
                self._advance(now_ms)
            return None
        if isinstance(turn, NoiseTurn):
            if self.agent_heard_ms >= turn.after_ms or waited >= self.options.max_wait_ms:
                self.speech = bytearray(noise_burst(turn.noise_ms, self.rate, turn.level_dbfs))
                self.speaking = True
                self._advance(now_ms)
                return f"noise:{turn.noise_ms} ms at {turn.level_dbfs:g} dBFS"
            return None
        cut_in_at = (
            turn.barge_in_after_ms if isinstance(turn, CallerTurn | PressTurn) else turn.hangup
        )
        if cut_in_at is not None:
            ready = self.agent_heard_ms >= cut_in_at
        else:
            pause = turn.pause_ms if isinstance(turn, CallerTurn | PressTurn) else 700
            heard_agent = self.agent_heard_ms > 0 or not expects_agent
            ready = heard_agent and quiet_ms >= pause
        if not ready and waited < self.options.max_wait_ms:
            return None
        if isinstance(turn, HangupTurn):
            return "hangup"
        if isinstance(turn, PressTurn):
            self.speaking = True
            self._advance(now_ms)
            if turn.via == "webhook":
                return f"webhook-keys:{turn.press}"
            self.pressing, self.keys, self.keys_sent = turn.press, list(turn.press), 0
            self.key_gap_ms, self.next_key_ms = turn.gap_ms, now_ms
            return None
        self.speech = bytearray(self.voice(turn.caller, self.rate))
        self.speaking = True
        self._advance(now_ms)
        return f"say:{turn.caller}"

    def _advance(self, now_ms: int) -> None:
        self.index += 1
        self.turn_started_ms = now_ms
        self.agent_heard_ms = 0
        self.last_activity_ms = now_ms

    def next_frame(self, size: int) -> bytes | None:
        if not self.speech:
            return None
        frame = bytes(self.speech[:size])
        del self.speech[:size]
        if len(frame) < size:
            frame += bytes(size - len(frame))
        return frame


def _beep(rate: int) -> bytes:
    """Half a second of quiet, then the voicemail's tone."""
    t = np.arange(int(rate * _BEEP_MS / 1000)) / rate
    tone = (9000 * np.sin(2 * np.pi * _BEEP_HZ * t)).astype("<i2").tobytes()
    return bytes(rate) + tone


def _rms(frame: bytes) -> float:
    # A dot product, not np.mean: this runs on every played frame of every simulated call.
    samples = np.frombuffer(frame, dtype="<i2").astype(np.float64)
    return math.sqrt(float(samples.dot(samples)) / samples.size) if samples.size else 0.0


def _clock(ms: int) -> str:
    minutes, ms = divmod(ms, 60_000)
    seconds, ms = divmod(ms, 1000)
    return f"{minutes:02d}:{seconds:02d}.{ms:03d}"


