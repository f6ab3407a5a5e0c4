"""Offline ASR accuracy and cascade latency on natural-sounding synthetic callers; prints one JSON object.

    python bench/asr_accuracy.py [--per-condition 48] [--flow flows/order_status.yaml]

The caller set is generated, not recorded: order numbers of every shape in the flow's policy (plus the demo
orders), said with and without carrier phrases, and intent phrases wrapped in fillers, spoken by flite's
voices at several speeds, clean and with white noise at 30 dB and 20 dB SNR. Each utterance is decoded with
the grammar the cascade brain would use, then run through the policy and the first TTS sentence, to time
every stage: end of speech -> transcript -> policy -> first TTS audio.

Rejection: every result carries a confidence (`Recognition.confidence`). The JSON reports, per condition
and voice, how many correct results keep a confidence >= MIN_CONFIDENCE (retention) and how many off-topic
lines (things callers say that the grammar cannot hold) fall below it (rejection). `--calibrate` also
prints the raw acoustic margins, to set the confidence scale's cut.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from orchestrator.brains.base import CallInfo, StateBrief, ToolCall  # noqa: E402
from orchestrator.brains.cascade import policy_config  # noqa: E402
from orchestrator.brains.policy import PolicyConfig, PolicyDialogue  # noqa: E402
from orchestrator.flow import load_flow  # noqa: E402
from orchestrator.logging import configure_logging  # noqa: E402
from orchestrator.speech.asr import (  # noqa: E402
    MIN_CONFIDENCE,
    SEARCH_INTENTS,
    SEARCH_NUMBERS,
    GrammarDecoder,
    Recognition,
)
from orchestrator.speech.grammar import match_intent, parse_order_number  # noqa: E402
from orchestrator.speech.tts import EspeakTts, split_sentences  # noqa: E402
from orchestrator.speech.voices import (  # noqa: E402
    CALLER_VOICES,
    add_noise,
    synthesize_caller,
    telephone_line,
)

_DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
_LEADS = ["", "", "my order number is", "the order number is", "hello, it is", "order number"]
_TAILS = ["", "", "please", "thank you"]
# name -> (white-noise SNR in dB or None, carried over a narrowband phone line first)
CONDITIONS: dict[str, tuple[float | None, bool]] = {
    "clean": (None, False),
    "white_30db": (30.0, False),
    "white_20db": (20.0, False),
    "phone_8k": (None, True),
}
# Things callers say that no grammar state holds: questions in their own words, small talk, asides.
OFF_TOPIC = (
    "is my order out for delivery",
    "what's the weather like in nairobi today",
    "i ordered a blue jacket last week and it has not come",
    "can you tell me when the parcel arrives",
    "i'd like to know where my package is",
    "sorry, my little boy is shouting in the background",
    "hang on, someone is at the door",
    "the rider called me yesterday but i missed it",
    "why is it taking so long",
    "do you deliver to mombasa",
    "i paid with m-pesa on monday",
    "my sister placed the order for me",
    "is the shop open on sunday",
    "the shoes were the wrong size",
    "what time do you close",
    "can i change the delivery address",
    "i think the courier has my old number",
    "mmm, let me see, where did i put it",
    "it was supposed to come on friday",
    "how much is the delivery fee",
    "this is the third time i am calling",
    "i bought a phone charger and some earphones",
    "the tracking link does not open",
    "are you a robot",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Utterance:
    """One caller line and what it means: an order number or an intent."""

    text: str
    order_number: str | None
    intent: str | None
    voice: str
    speed: float


def _say_number(number: str, rng: random.Random) -> str:
    words = []
    for ch in number:
        if ch.isdigit():
            words.append("oh" if ch == "0" and rng.random() < 0.4 else _DIGITS[int(ch)])
        else:
            words.append(ch)
    return " ".join(words)


def build_dataset(config: PolicyConfig, *, numbers: int, intents: int, seed: int = 7) -> list[Utterance]:
    """`numbers` order-number lines and `intents` intent lines, voices and speeds in rotation."""
    rng = random.Random(seed)
    demo = json.loads((ROOT / "fixtures" / "orders.json").read_text())["orders"]
    known = [o["order_number"] for o in demo if any(
        parse_order_number(_say_number(o["order_number"], rng).lower(), [s]) for s in config.shapes
    )]
    speeds = (0.9, 1.0, 1.15)
    out: list[Utterance] = []
    for index in range(numbers):
        if index < len(known):
            number = known[index]
        else:
            shape = config.shapes[index % len(config.shapes)]
            number = "".join(str(rng.randrange(10)) if ch == "#" else ch for ch in shape)
        lead, tail = rng.choice(_LEADS), rng.choice(_TAILS)
        text = " ".join(p for p in (lead, _say_number(number, rng), tail) if p) + "."
        out.append(Utterance(text=text, order_number=number, intent=None,
                             voice=CALLER_VOICES[index % len(CALLER_VOICES)], speed=speeds[index % 3]))
    phrases = [(rule.name, phrase) for rule in config.intents for phrase in rule.phrases]
    for index in range(intents):
        name, phrase = phrases[index % len(phrases)]
        lead = rng.choice(["", "", "hello", "okay", "i want to" if not phrase.startswith("i ") else ""])
        text = " ".join(p for p in (lead, phrase, rng.choice(_TAILS)) if p) + "."
        out.append(Utterance(text=text, order_number=None, intent=name,
                             voice=CALLER_VOICES[(index + 1) % len(CALLER_VOICES)], speed=speeds[(index + 1) % 3]))
    return out


def audio_for(utterance: Utterance, snr_db: float | None, seed: int, *, phone: bool = False) -> bytes:
    pcm = synthesize_caller(utterance.text, utterance.voice, utterance.speed)  # type: ignore[arg-type]
    # Real callers leave a little silence around their words; the VAD and decoder expect it.
    pad = b"\x00\x00" * 3200
    pcm = pad + pcm + pad
    pcm = telephone_line(pcm) if phone else pcm
    return pcm if snr_db is None else add_noise(pcm, snr_db, seed=seed)


@dataclass(slots=True)
class Score:
    numbers: int = 0
    numbers_right: int = 0
    intents: int = 0
    intents_right: int = 0
    right_kept: int = 0  # correct results with confidence >= MIN_CONFIDENCE
    wrong: int = 0
    wrong_rejected: int = 0  # wrong results below MIN_CONFIDENCE
    off_topic: int = 0
    off_topic_rejected: int = 0  # off-topic lines below MIN_CONFIDENCE (or with no words at all)

    def as_json(self) -> dict[str, float | int]:
        right = self.numbers_right + self.intents_right
        return {
            "utterances": self.numbers + self.intents,
            "order_number_exact_match": round(self.numbers_right / max(1, self.numbers), 4),
            "intent_accuracy": round(self.intents_right / max(1, self.intents), 4),
            "correct_retained": round(self.right_kept / max(1, right), 4),
            "wrong_rejected": round(self.wrong_rejected / max(1, self.wrong), 4),
            "off_topic_lines": self.off_topic,
            "off_topic_rejected": round(self.off_topic_rejected / max(1, self.off_topic), 4),
        }

    def add(self, other: Score) -> None:
        for name in self.__slots__:  # type: ignore[attr-defined]  # dataclass(slots=True) sets it
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass(slots=True)
class Margins:
    """Raw acoustic margins behind the confidences, to calibrate the cut (`--calibrate`)."""

    right: list[float]
    off_topic: list[float]


def off_topic_set(count: int) -> list[Utterance]:
    """`count` off-topic lines, voices and speeds in rotation."""
    speeds = (0.9, 1.0, 1.15)
    return [
        Utterance(text=OFF_TOPIC[i % len(OFF_TOPIC)], order_number=None, intent=None,
                  voice=CALLER_VOICES[i % len(CALLER_VOICES)], speed=speeds[(i // 4) % 3])
        for i in range(count)
    ]


def evaluate(
    decoder: GrammarDecoder, config: PolicyConfig, dataset: list[Utterance], snr_db: float | None,
    *, per_turn: bool = True, margins: Margins | None = None, phone: bool = False,
) -> tuple[Score, list[float], list[str]]:
    """Decode every utterance; the per-turn grammar uses intents only where no number is expected.

    Off-topic lines (neither number nor intent) are decoded with the `numbers` grammar, the widest one:
    they count as rejected when their confidence falls below MIN_CONFIDENCE.
    """
    score = Score()
    asr_ms: list[float] = []
    misses: list[str] = []
    intents = {rule.name: rule.phrases for rule in config.intents}
    for index, utterance in enumerate(dataset):
        pcm = audio_for(utterance, snr_db, seed=index, phone=phone)
        # Numbers are asked for in `identifying`, whose grammar takes numbers and intents alike.
        wide = utterance.order_number or utterance.intent is None or not per_turn
        search = SEARCH_NUMBERS if wide else SEARCH_INTENTS
        started = time.perf_counter()
        decoded = decoder.recognize(pcm, search)
        asr_ms.append((time.perf_counter() - started) * 1000)
        text, kept = decoded.text, decoded.confidence >= MIN_CONFIDENCE
        if utterance.order_number is None and utterance.intent is None:
            score.off_topic += 1
            score.off_topic_rejected += not kept
            if margins is not None and decoded.margin is not None:
                margins.off_topic.append(decoded.margin)
            if kept:
                misses.append(f"{utterance.voice}: off-topic {utterance.text!r} -> {text!r} "
                              f"({decoded.confidence})")
            continue
        if utterance.order_number is not None:
            score.numbers += 1
            right = parse_order_number(text, config.shapes) == utterance.order_number
            score.numbers_right += right
        else:
            score.intents += 1
            right = match_intent(text, intents) == utterance.intent
            score.intents_right += right
        if right:
            score.right_kept += kept
            if margins is not None and decoded.margin is not None:
                margins.right.append(decoded.margin)
            if not kept:
                misses.append(f"{utterance.voice}: rejected {utterance.text!r} -> {text!r} "
                              f"({decoded.confidence})")
        else:
            score.wrong += 1
            score.wrong_rejected += not kept
            misses.append(f"{utterance.voice}: {utterance.text!r} -> {text!r} ({decoded.confidence})")
    return score, asr_ms, misses


async def stage_latency(config: PolicyConfig, texts: list[str], voice: str) -> tuple[list[float], list[float]]:
    """Policy time (transcript -> first step) and TTS time (first step -> first audio) per transcript."""
    tts = EspeakTts(voice=voice)
    policy_ms: list[float] = []
    tts_ms: list[float] = []
    for text in texts:
        dialogue = PolicyDialogue(config)
        dialogue.begin(CallInfo(call_sid="bench", caller="+254712345678", sample_rate=16000,
                                system_prompt="", voice=voice, language="en", tools=()))
        async for _ in dialogue.on_state(StateBrief(name="identifying", instructions=None,
                                                    tools=("lookup_order", "transfer_to_human", "end_call"))):
            pass
        started = time.perf_counter()
        first: str | ToolCall | None = None
        heard = Recognition(text=text, search="numbers", speech_ms=0, decode_ms=0.0, confidence=1.0)
        async for step in dialogue.on_caller(heard):
            first = step
            break
        policy_ms.append((time.perf_counter() - started) * 1000)
        if isinstance(first, str):
            started = time.perf_counter()
            await tts.synthesize(split_sentences(first)[0])
            tts_ms.append((time.perf_counter() - started) * 1000)
    return policy_ms, tts_ms


def _summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    return {
        "median": round(statistics.median(ordered), 1),
        "p90": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))], 1),
        "max": round(ordered[-1], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flow", default=str(ROOT / "flows" / "order_status.yaml"))
    parser.add_argument("--numbers", type=int, default=48)
    parser.add_argument("--intents", type=int, default=24)
    parser.add_argument("--off-topic", type=int, default=24)
    parser.add_argument("--conditions", default=",".join(CONDITIONS),
                        help="comma-separated subset of " + ", ".join(CONDITIONS))
    parser.add_argument("--misses", action="store_true", help="list misrecognised lines on stderr")
    parser.add_argument("--calibrate", action="store_true",
                        help="also print the acoustic margins of correct and off-topic results")
    args = parser.parse_args()
    configure_logging(json=True, level=logging.WARNING)  # stdout carries the JSON figures only
    flow = load_flow(args.flow)
    config = policy_config(flow)
    decoder = GrammarDecoder(config.grammar())
    dataset = build_dataset(config, numbers=args.numbers, intents=args.intents)
    dataset += off_topic_set(args.off_topic)
    total = Score()
    per_condition: dict[str, dict[str, float | int]] = {}
    by_voice: dict[str, dict[str, dict[str, float | int]]] = {}
    asr_all: list[float] = []
    margins = Margins(right=[], off_topic=[])
    for name in args.conditions.split(","):
        snr, phone = CONDITIONS[name]
        condition = Score()
        for voice in CALLER_VOICES:
            subset = [u for u in dataset if u.voice == voice]
            score, asr_ms, misses = evaluate(decoder, config, subset, snr, margins=margins, phone=phone)
            by_voice.setdefault(name, {})[voice] = score.as_json()
            condition.add(score)
            asr_all += asr_ms
            if args.misses:
                print(f"# {name} {voice}", *misses, sep="\n", file=sys.stderr)
        per_condition[name] = condition.as_json()
        total.add(condition)
    transcripts = [u.text.lower().replace(",", "").rstrip(".") for u in dataset]
    policy_ms, tts_ms = asyncio.run(stage_latency(config, transcripts, flow.voice.name))
    result = {
        **total.as_json(),
        "utterances_per_condition": len(dataset),
        "min_confidence": MIN_CONFIDENCE,
        "conditions": per_condition,
        "by_voice": by_voice,
        "latency_ms": {
            "end_of_speech_to_transcript": _summary(asr_all),
            "transcript_to_policy": _summary(policy_ms),
            "policy_to_first_tts_audio": _summary(tts_ms),
        },
        "note": "end_of_speech_to_transcript is whole-utterance decoding; the brain decodes while the caller "
        "speaks, so in a call only the last chunk remains after the VAD's end-of-speech decision",
    }
    if args.calibrate:
        right = sorted(margins.right)
        result["calibration"] = {
            "right_margin_p01": round(right[int(len(right) * 0.01)], 3) if right else None,
            "right_margin_p05": round(right[int(len(right) * 0.05)], 3) if right else None,
            "off_topic_margins": sorted(round(m, 3) for m in margins.off_topic),
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
