"""The cascade brain: streaming ASR -> a Dialogue (offline policy or chat LLM with tools) -> TTS.

One Brain over three replaceable parts. Caller audio goes to a `StreamingRecognizer` (pocketsphinx with
grammars generated from the flow); each recognised utterance, state change and tool result is a *trigger*,
handled one at a time by the `Dialogue`, whose steps are text to speak (synthesised sentence by sentence,
so the first plays while the rest are made) or tool calls. A barge-in cancels the running trigger at once
and tells the dialogue what the caller actually heard. With `PolicyDialogue`, espeak-ng and the grammar it
needs no key, no network and no model download: `make_offline_brain_factory(flow)` is the embedded default.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import structlog

from orchestrator.audio.resample import Resampler
from orchestrator.brains.base import (
    AgentAudio,
    AgentUtteranceEnd,
    Brain,
    BrainEvent,
    BrainFailure,
    CallInfo,
    Heard,
    JSONValue,
    Keypad,
    Speech,
    StateBrief,
    ToolCall,
)
from orchestrator.brains.chat import ChatCompletionsClient, ChatDialogue, ChatSettings
from orchestrator.brains.policy import (
    BUILTIN_PHRASES,
    Decisive,
    IntentRule,
    PolicyConfig,
    PolicyDialogue,
    StateListen,
)
from orchestrator.errors import ConfigError, OrchestratorError
from orchestrator.flow.languages import SET_LANGUAGE_TOOL, LocalText, phrases_for, text_for
from orchestrator.flow.model import Flow, ListenEntry
from orchestrator.speech.asr import (
    SEARCH_NUMBERS,
    DecoderSource,
    Recognition,
    StreamingRecognizer,
)
from orchestrator.speech.choice import SpeechChoice, build_recognizer, build_voice
from orchestrator.speech.grammar import DIGIT_WORDS
from orchestrator.speech.http_tts import Synthesizer
from orchestrator.speech.pool import DecoderPool, release_freed_memory
from orchestrator.speech.swahili import SWAHILI_DIGIT_WORDS, swahili_pronunciations
from orchestrator.speech.transcribers import GrammarThenTranscriber
from orchestrator.speech.tts import split_sentences
from orchestrator.telephony.webhook import CallStart

__all__ = [
    "CascadeBrain",
    "Dialogue",
    "OfflineBrains",
    "TurnTiming",
    "make_chat_brain_factory",
    "make_offline_brain_factory",
    "policy_config",
]

log = structlog.get_logger(__name__)

_ASR_RATE = 16000
ESCALATION_STATE = "escalating"  # the session's well-known state where a person takes the call
ORDER_NUMBER_INTENT = "order_number"  # in `listen:`: this state takes an order number
_CHUNK_MS = 100  # agent audio is handed out in 100 ms chunks, like a streaming TTS


class Dialogue(Protocol):
    """The thinking step: each method yields one agent turn's steps — text to speak or a ToolCall."""

    def begin(self, call: CallInfo) -> None: ...

    def listening(self) -> str | None:
        """The recogniser search for the caller's next turn; None for the widest one."""
        ...

    def on_state(self, state: StateBrief) -> AsyncIterator[str | ToolCall]: ...

    def on_caller(self, heard: Recognition) -> AsyncIterator[str | ToolCall]:
        """What the caller said and how sure the recogniser is of it."""
        ...

    def on_tool_result(
        self, call: ToolCall, result: Mapping[str, JSONValue]
    ) -> AsyncIterator[str | ToolCall]: ...

    def on_interrupted(self, heard: str) -> None: ...

    def on_keypad(self, keys: Keypad) -> AsyncIterator[str | ToolCall]:
        """What the caller typed on the keypad (exact, unlike speech)."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class TurnTiming:
    """Latency of one caller turn, stage by stage, in wall-clock milliseconds."""

    transcript: str
    confidence: float  # the recogniser's (Recognition.confidence); below MIN_CONFIDENCE: not understood
    speech_ms: int  # the caller audio decoded for this turn
    endpoint_ms: int  # end of speech -> the VAD's decision that the caller stopped (audio heard meanwhile)
    asr_ms: float  # the VAD's decision -> transcript; of which:
    first_pass_ms: float  # the decoder's grammar pass (end of utterance, best path, scores)
    second_look_ms: float | None  # its second look at speech the grammar could not explain (None: none)
    policy_ms: float  # transcript -> the dialogue's first step
    tts_first_ms: float | None  # first step -> first agent audio frame (None: nothing was said)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Caller:
    recognition: Recognition


@dataclass(frozen=True, slots=True, kw_only=True)
class _State:
    state: StateBrief


@dataclass(frozen=True, slots=True, kw_only=True)
class _Result:
    call: ToolCall
    result: Mapping[str, JSONValue]


@dataclass(frozen=True, slots=True, kw_only=True)
class _Say:
    text: str
    utterance_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class _Keys:
    keys: Keypad


_Trigger = _Caller | _State | _Result | _Say | _Keys


@dataclass(slots=True)
class _Spoken:
    text: str
    total_ms: int


class CascadeBrain:
    """A Brain made of a recogniser, a Dialogue and a TTS.

        pool = DecoderPool(lambda: GrammarDecoder(config.grammars()))   # shared by every call
        brain = CascadeBrain(PolicyDialogue(config), asr=pool, tts=EspeakTts(voice="en-us"))
    """

    def __init__(
        self,
        dialogue: Dialogue,
        *,
        asr: DecoderSource,
        tts: Synthesizer,
        on_close: Callable[[], object] | None = None,
        voices: Mapping[str, Synthesizer] | None = None,
    ) -> None:
        self._dialogue = dialogue
        self._tts = tts
        self._voices = dict(voices or {})  # by language, in a flow of several
        self._on_close = on_close
        self._events: asyncio.Queue[BrainEvent | None] = asyncio.Queue()
        self._triggers: asyncio.Queue[_Trigger] = asyncio.Queue()
        self._recognizer = StreamingRecognizer(
            asr, on_result=self._on_recognition, on_error=self._on_recognizer_failed
        )
        # Built at the webhook: have a decoder ready (most of a second to load, holding the GIL) while the
        # platform plays the greeting, rather than when the stream connects and the first prompt is due.
        self._warming = _warm_now(asr)
        self._resampler: Resampler | None = None
        self._worker: asyncio.Task[None] | None = None
        self._loading: asyncio.Task[None] | None = None
        self._current: asyncio.Task[None] | None = None
        self._spoken: dict[str, _Spoken] = {}
        self._turn_utterances: list[str] = []
        self._seq = 0
        self._closed = False
        self.timings: list[TurnTiming] = []

    # --- Brain ------------------------------------------------------------------------------

    async def start(self, call: CallInfo) -> None:
        if call.sample_rate != _ASR_RATE:
            self._resampler = Resampler(call.sample_rate, _ASR_RATE)
        self._use_voice(call.language, call.sample_rate)
        if self._tts.rate != call.sample_rate:
            self._tts = self._tts.at_rate(call.sample_rate)
        self._dialogue.begin(call)
        loop = asyncio.get_running_loop()
        # The model loads in the background (about half a second): the first prompt must not wait for it,
        # and audio heard meanwhile is queued for the decoder.
        self._loading = loop.create_task(self._load_recognizer())
        self._worker = loop.create_task(self._run_triggers())

    def _use_voice(self, language: object, rate: int | None = None) -> None:
        """Speak the call's language from now on (when the flow gives it a voice of its own)."""
        voice = self._voices.get(language) if isinstance(language, str) else None
        if voice is not None:
            self._tts = voice.at_rate(rate or self._tts.rate)

    async def _load_recognizer(self) -> None:
        if self._warming is not None:
            with contextlib.suppress(Exception):  # start() below warms again and reports a failure
                await self._warming
        try:
            await self._recognizer.start()
        except OrchestratorError as exc:
            # No recogniser: the flow's brain_failed route, not a crash.
            self._events.put_nowait(BrainFailure(reason=str(exc)))

    async def push_audio(self, pcm: bytes) -> None:
        if self._resampler is not None:
            pcm = self._resampler.process(pcm)
        self._recognizer.feed(pcm)

    async def enter_state(self, state: StateBrief) -> None:
        self._triggers.put_nowait(_State(state=state))

    async def say(self, text: str, *, utterance_id: str) -> None:
        self._triggers.put_nowait(_Say(text=text, utterance_id=utterance_id))

    async def tool_result(self, call: ToolCall, result: Mapping[str, JSONValue]) -> None:
        self._triggers.put_nowait(_Result(call=call, result=result))

    async def interrupt(self, heard: Heard | None) -> None:
        if self._current is not None:
            self._current.cancel()
        self._dialogue.on_interrupted(self._heard_text(heard))

    async def keypad(self, keys: Keypad) -> None:
        self._triggers.put_nowait(_Keys(keys=keys))

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
        for task in (self._current, self._worker, self._loading):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._warming is not None:
            self._warming.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):  # reported by start() if it mattered
                await self._warming
        await self._recognizer.close()
        # Decoding buffers were freed in worker threads, whose arenas glibc keeps: give them back.
        await asyncio.to_thread(release_freed_memory)
        if self._on_close is not None:
            closing = self._on_close()
            if asyncio.iscoroutine(closing):
                await closing
        self._events.put_nowait(None)

    # --- triggers, one at a time ------------------------------------------------------------

    def _on_recognizer_failed(self, error: Exception) -> None:
        log.warning("cascade_recognizer_failed", error=repr(error))
        self._events.put_nowait(BrainFailure(reason=f"speech recognition failed: {error}"))

    def _on_recognition(self, recognition: Recognition) -> None:
        self._events.put_nowait(Speech(role="caller", text=recognition.text))
        self._triggers.put_nowait(_Caller(recognition=recognition))

    async def _run_triggers(self) -> None:
        while True:
            trigger = await self._triggers.get()
            task = asyncio.get_running_loop().create_task(self._perform(trigger))
            self._current = task
            try:
                # wait() rather than await: a barge-in cancels the turn, not this loop.
                await asyncio.wait({task})
            finally:
                if not task.done():
                    task.cancel()
                self._current = None
            if not task.cancelled() and (error := task.exception()) is not None:
                log.warning("cascade_turn_failed", error=repr(error))
                self._events.put_nowait(BrainFailure(reason=str(error) or repr(error)))
                return

    async def _perform(self, trigger: _Trigger) -> None:
        if isinstance(trigger, _Say):
            self._turn_utterances = []
            await self._speak(trigger.text, trigger.utterance_id)
            return
        started = time.perf_counter()
        if isinstance(trigger, _Caller):
            steps = self._dialogue.on_caller(trigger.recognition)
        elif isinstance(trigger, _State):
            self._use_voice(trigger.state.language)
            steps = self._dialogue.on_state(trigger.state)
        elif isinstance(trigger, _Keys):
            steps = self._dialogue.on_keypad(trigger.keys)
        else:
            self._use_voice(trigger.result.get("language"))
            steps = self._dialogue.on_tool_result(trigger.call, trigger.result)
        self._turn_utterances = []
        policy_ms: float | None = None
        tts_first_ms: float | None = None
        async for step in steps:
            if policy_ms is None:
                policy_ms = (time.perf_counter() - started) * 1000
            if isinstance(step, ToolCall):
                self._events.put_nowait(step)
                continue
            first = await self._speak(step, self._next_id())
            if tts_first_ms is None and first is not None:
                tts_first_ms = first
        self._recognizer.use_search(self._dialogue.listening() or SEARCH_NUMBERS)
        if isinstance(trigger, _Caller):
            timing = TurnTiming(
                transcript=trigger.recognition.text,
                confidence=trigger.recognition.confidence,
                speech_ms=trigger.recognition.speech_ms,
                endpoint_ms=trigger.recognition.endpoint_ms,
                asr_ms=round(trigger.recognition.decode_ms, 1),
                first_pass_ms=trigger.recognition.first_pass_ms,
                second_look_ms=trigger.recognition.second_look_ms,
                policy_ms=round(policy_ms or (time.perf_counter() - started) * 1000, 1),
                tts_first_ms=None if tts_first_ms is None else round(tts_first_ms, 1),
            )
            self.timings.append(timing)
            log.info("cascade_turn", **asdict(timing))

    async def _speak(self, text: str, utterance_id: str) -> float | None:
        """Synthesise and emit one utterance sentence by sentence; returns ms to its first audio."""
        started = time.perf_counter()
        first_ms: float | None = None
        spoken = _Spoken(text=text, total_ms=0)
        self._spoken[utterance_id] = spoken
        self._turn_utterances.append(utterance_id)
        chunk = self._tts.rate * 2 * _CHUNK_MS // 1000
        try:
            for sentence in split_sentences(text) or [text]:
                pcm = await self._tts.synthesize(sentence)
                if first_ms is None:
                    first_ms = (time.perf_counter() - started) * 1000
                spoken.total_ms += len(pcm) * 1000 // (self._tts.rate * 2)
                for at in range(0, len(pcm), chunk):
                    self._events.put_nowait(
                        AgentAudio(pcm=pcm[at : at + chunk], utterance_id=utterance_id)
                    )
        finally:
            # Even when cut short, the session must learn the utterance is over and what it said.
            self._events.put_nowait(AgentUtteranceEnd(utterance_id=utterance_id))
            self._events.put_nowait(Speech(role="agent", text=text, utterance_id=utterance_id))
        return first_ms

    def _heard_text(self, heard: Heard | None) -> str:
        """The agent's words the caller heard this turn: whole utterances before the cut, then a share."""
        words: list[str] = []
        for utterance_id in self._turn_utterances:
            spoken = self._spoken.get(utterance_id)
            if spoken is None:
                continue
            if heard is None or utterance_id != heard.utterance_id:
                words.extend(spoken.text.split())
                continue
            share = 0.0 if heard.total_ms <= 0 else min(1.0, heard.played_ms / heard.total_ms)
            cut = spoken.text.split()
            words.extend(cut[: int(len(cut) * share)])
            break
        return " ".join(words)

    def _next_id(self) -> str:
        self._seq += 1
        return f"cascade-{self._seq}"


def _warm_now(asr: DecoderSource) -> asyncio.Task[None] | None:
    """Start warming `asr` when built inside a running loop (the webhook); None outside one."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    task = loop.create_task(asr.warm())
    task.add_done_callback(lambda done: done.cancelled() or done.exception())
    return task


# --- factories ------------------------------------------------------------------------------


def policy_config(flow: Flow, language: str | None = None) -> PolicyConfig:
    """The offline policy's data from a flow's `policy:` section and states' `listen:` (ConfigError when
    the flow has no `policy:`), with its phrases and words in `language` (the flow's default if None)."""
    policy = flow.policy
    if policy is None:
        raise ConfigError(f"flow {flow.name!r} has no `policy:` section for the offline brain")
    language = language or flow.default_language
    default = flow.default_language

    def words(text: LocalText | None) -> str | None:
        return text_for(text, language, default)

    slot = policy.order_number
    yes_intent = slot.yes_intent if slot else "yes"
    no_intent = slot.no_intent if slot else "no"
    intents = [
        IntentRule(
            name=name,
            phrases=phrases_for(intent.phrases, language),
            say=words(intent.say),
            tool=intent.tool,
            arguments=dict(intent.arguments),
        )
        for name, intent in policy.intents.items()
    ]
    intents.extend(_switch_rules(flow))
    # Yes and no answer the questions the policy itself asks, in any flow.
    for name, builtin in ((yes_intent, "yes"), (no_intent, "no")):
        if name not in policy.intents:
            intents.append(IntentRule(name=name, phrases=BUILTIN_PHRASES[builtin]))
    fillers = phrases_for(policy.fillers, language)
    listen = {
        name: _state_listen(spec.listen, policy.intents, language, default)
        for name, spec in flow.states.items()
        if spec.listen
    }
    swahili = language.split("-")[0].lower() == "sw"
    return PolicyConfig(
        shapes=slot.shapes if slot else (),
        number_tool=slot.tool if slot else "lookup_order",
        number_argument=slot.argument if slot else "order_number",
        number_say=words(slot.say) if slot else None,
        confirm_say=words(slot.confirm_say) if slot and slot.confirm else None,
        yes_intent=yes_intent,
        no_intent=no_intent,
        intents=tuple(intents),
        fillers=fillers,
        replies={key: words(text) or "" for key, text in policy.replies.items()},
        shop=dict(flow.shop),
        listen=listen,
        understood=policy.confidence.understood,
        sure=policy.confidence.sure,
        sure_whole=policy.confidence.sure_whole,
        decisive=_decisive_tools(flow),
        multiple_orders=policy.multiple_orders,
        search_suffix="" if language == default else f"@{language}",
        digits={**DIGIT_WORDS, **SWAHILI_DIGIT_WORDS} if swahili else DIGIT_WORDS,
        pronunciations=_pronunciations(flow, language, intents, fillers, listen),
        digit_names=tuple(SWAHILI_DIGIT_WORDS) if swahili else (),
        and_word=" na " if swahili else " and ",
    )


def _switch_rules(flow: Flow) -> list[IntentRule]:
    """"Kiswahili tafadhali": each language's switch phrases call set_language, heard in every language."""
    return [
        IntentRule(
            name=f"language_{code.replace('-', '_')}",
            phrases=phrases,
            tool=SET_LANGUAGE_TOOL,
            arguments={"language": code},
        )
        for code, phrases in flow.language.switch_phrases.items()
        if len(flow.call_languages) > 1
    ]


def _pronunciations(
    flow: Flow,
    language: str,
    intents: list[IntentRule],
    fillers: tuple[str, ...],
    listen: Mapping[str, StateListen],
) -> dict[str, str]:
    """Phones of the Swahili words a grammar holds: its own phrases when it is Swahili, and in any language
    the switch phrases when the flow speaks Swahili ("kiswahili tafadhali", "kwa kiingereza")."""
    swahili: list[str] = []
    if any(code.split("-")[0].lower() == "sw" for code in flow.call_languages):
        for phrases in flow.language.switch_phrases.values():
            swahili.extend(phrases)
    if language.split("-")[0].lower() == "sw":
        switching = {rule.name for rule in _switch_rules(flow)}
        swahili.extend(p for rule in intents if rule.name not in switching for p in rule.phrases)
        swahili.extend(fillers)
        swahili.extend(p for each in listen.values() for rule in each.rules for p in rule.phrases)
        swahili.extend(SWAHILI_DIGIT_WORDS)
    return swahili_pronunciations(swahili)


def _voice_for(flow: Flow, speech: SpeechChoice, language: str | None = None) -> Synthesizer:
    """The agent's voice in `language`: the flow's for it, the flow's own for the default, else espeak-ng's
    voice named by the language (`sw` for sw-KE)."""
    language = language or flow.default_language
    voice = flow.language.voices.get(language)
    if voice is None:
        voice = flow.voice.name if language == flow.default_language else language.split("-")[0]
    return build_voice(speech, voice=voice, speed=flow.voice.speed)


def _voices(flow: Flow, speech: SpeechChoice) -> dict[str, Synthesizer]:
    if len(flow.call_languages) < 2:
        return {}
    return {language: _voice_for(flow, speech, language) for language in flow.call_languages}


def _state_listen(
    listen: Mapping[str, ListenEntry], declared: Mapping[str, object], language: str, default: str
) -> StateListen:
    rules = tuple(
        IntentRule(
            name=name,
            # A built-in the flow does not declare brings its own phrases.
            phrases=phrases_for(entry.phrases, language)
            or (BUILTIN_PHRASES.get(name, ()) if name not in declared else ()),
            say=text_for(entry.say, language, default),
            tool=entry.tool,
            arguments=dict(entry.arguments),
        )
        for name, entry in listen.items()
        if name != ORDER_NUMBER_INTENT
    )
    return StateListen(
        rules=rules,
        numbers=ORDER_NUMBER_INTENT in listen,
        keypad=any(entry.keypad for entry in listen.values()),
    )


def _decisive_tools(flow: Flow) -> dict[str, Decisive]:
    """Tools after which the agent is gone: their route ends the call or leads to a person."""
    decisive: dict[str, Decisive] = {}
    for name in flow.tools:
        for state in flow.states:
            for transition in flow.transitions(state, f"tool:{name}"):
                target = flow.states.get(transition.target)
                if target is not None and target.final:
                    decisive.setdefault(name, "end")
                elif transition.target == ESCALATION_STATE:
                    decisive.setdefault(name, "human")
    return decisive


def make_offline_brain_factory(flow: Flow, speech: SpeechChoice | None = None) -> OfflineBrains:
    """The embedded default: pocketsphinx + the flow's policy + espeak-ng; no key, no network.

    `speech` swaps the recogniser or the voice (an open-vocabulary recogniser's words are matched against
    the same intents and order-number shapes).
    """
    speech = speech or SpeechChoice()
    configs = {language: policy_config(flow, language) for language in flow.call_languages}
    config = configs[flow.default_language]
    tts = _voice_for(flow, speech)
    voices = _voices(flow, speech)
    grammars = {name: spec for each in configs.values() for name, spec in each.grammars().items()}
    asr = build_recognizer(speech, grammars)
    return OfflineBrains(
        lambda: PolicyDialogue(config, languages=configs),
        asr=asr,
        tts=tts,
        voices=voices,
        decoders_at_start=speech.asr_decoders_at_start,
    )


class OfflineBrains:
    """The offline brain factory: every call's brain shares one recogniser and one voice.

    `prepare()` builds `decoders_at_start` grammar decoders while the service starts: each is a process
    that loads its models for one to two seconds (longer on a busy machine), and callers arriving at once
    after a start waited for theirs mid-utterance.
    """

    def __init__(
        self,
        dialogue: Callable[[], PolicyDialogue],
        *,
        asr: DecoderSource,
        tts: Synthesizer,
        voices: Mapping[str, Synthesizer],
        decoders_at_start: int,
    ) -> None:
        self._dialogue = dialogue
        self._asr = asr
        self._tts = tts
        self._voices = voices
        self._decoders_at_start = decoders_at_start

    def __call__(self, start: CallStart) -> Brain:
        return CascadeBrain(self._dialogue(), asr=self._asr, tts=self._tts, voices=self._voices)

    @property
    def decoders(self) -> int:
        """Grammar decoders alive in the shared pool (0 with a transcription backend alone)."""
        pool = self._grammar_pool()
        return pool.size if pool is not None else 0

    async def prepare(self) -> None:
        pool = self._grammar_pool()
        if pool is not None:
            await pool.fill(self._decoders_at_start)

    def _grammar_pool(self) -> DecoderPool[Any] | None:
        asr = self._asr.grammar if isinstance(self._asr, GrammarThenTranscriber) else self._asr
        return asr if isinstance(asr, DecoderPool) else None


def make_chat_brain_factory(
    flow: Flow, settings: ChatSettings, speech: SpeechChoice | None = None
) -> Callable[[CallStart], Brain]:
    """An OpenAI-compatible chat model with tools, hearing the caller through an open-vocabulary recogniser.

    The model must hear what the caller said, not the nearest grammar phrase: by default pocketsphinx's
    general English model; `speech` may choose Whisper or a transcription endpoint instead.
    """
    speech = speech or SpeechChoice()
    tts = _voice_for(flow, speech)
    slot = flow.policy.order_number if flow.policy is not None else None
    asr = build_recognizer(speech, None, shapes=slot.shapes if slot is not None else ())

    def build(start: CallStart) -> Brain:
        client = ChatCompletionsClient(settings)
        return CascadeBrain(
            ChatDialogue(client),
            asr=asr,
            tts=tts,
            on_close=client.aclose,
        )

    return build
