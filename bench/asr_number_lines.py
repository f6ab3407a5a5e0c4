"""Order numbers said inside callers' own sentences, decoded one at a time; prints one JSON object.

    python bench/asr_number_lines.py [--set twos|lead_in|all] [--noise 30] [--grammar-only]

Decoder level (no call, no policy): each line is said by the four flite voices, padded with 200 ms of
silence, and decoded by the flow's `GrammarDecoder` in its numbers search, second look included unless
`--grammar-only`. Two sets of lines written for the offline recogniser's known misses, not taken from any
benchmark's YAML:
- `twos`: "two" right after a letter or another digit ("P K two zero ..."), which slt runs into the letter;
- `lead_in`: letters right after lead-in words no grammar holds ("it says D X one zero four two").
Counts per voice: numbers right, and numbers wrong but confident (a different number the policy would act
on: confidence >= MIN_CONFIDENCE and not open words). Timing is not reported: the box is shared.
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from orchestrator.brains.cascade import policy_config  # noqa: E402
from orchestrator.flow import load_flow  # noqa: E402
from orchestrator.speech.asr import MIN_CONFIDENCE, SEARCH_NUMBERS, GrammarDecoder  # noqa: E402
from orchestrator.speech.grammar import parse_order_number  # noqa: E402
from orchestrator.speech.voices import CALLER_VOICES, add_noise, synthesize_caller  # noqa: E402

TWOS: tuple[tuple[str, str], ...] = (
    ("P K two zero nine three one.", "PK20931"),
    ("My order number is P K two two four one eight.", "PK22418"),
    ("It's P K two seven three zero five.", "PK27305"),
    ("Hi, the number is D X two zero one four.", "DX2014"),
    ("Can you check P K two one five five two please.", "PK21552"),
    ("Order P K two nine zero zero three.", "PK29003"),
    ("Hello, I'm calling about P K two zero four four six.", "PK20446"),
    ("The reference is D X one two two zero.", "DX1220"),
    ("I have an order, P K two eight one six zero, where is it?", "PK28160"),
    ("Yes, it's D X two four two one.", "DX2421"),
    ("Two three four five six.", "23456"),
    ("My order is P K one two three four five.", "PK12345"),
    ("Could you look up P K two zero two zero two?", "PK20202"),
    ("The code they texted me is D X seven two two nine.", "DX7229"),
    ("Um, P K two six six one nine, thanks.", "PK26619"),
    ("Order number two zero nine one one.", "20911"),
    ("I'm after P K two three zero seven seven.", "PK23077"),
    ("D X two two zero two.", "DX2202"),
    ("It is P K zero two nine eight eight.", "PK02988"),
    ("The number is D X zero zero two five.", "DX0025"),
)

LEAD_IN: tuple[tuple[str, str], ...] = (
    ("It says D X one zero four two.", "DX1042"),
    ("The text says D X three three one eight.", "DX3318"),
    ("I got a message with P K four zero nine one five.", "PK40915"),
    ("The label says D X five one six zero.", "DX5160"),
    ("It's under D X eight zero three one.", "DX8031"),
    ("On my receipt it's P K six one two four four.", "PK61244"),
    ("Somebody gave me D X nine nine zero one.", "DX9901"),
    ("The tracking code reads D X one one seven three.", "DX1173"),
    ("Could you check D X four four zero six?", "DX4406"),
    ("I think it was P K three zero five five one.", "PK30551"),
    ("Look for D X six zero zero eight.", "DX6008"),
    ("The parcel is D X three one four one.", "DX3141"),
    ("According to the email it's P K five five zero one three.", "PK55013"),
    ("It should be D X seven seven one zero.", "DX7710"),
    ("The box said P K nine one three three six.", "PK91336"),
    ("My confirmation shows D X one zero eight eight.", "DX1088"),
    ("Right here it says D X four one nine nine.", "DX4199"),
    ("The sticker has P K eight eight two zero one.", "PK88201"),
)

SETS = {"twos": TWOS, "lead_in": LEAD_IN, "all": TWOS + LEAD_IN}
_PAD = b"\x00\x00" * 3200  # 200 ms of silence either side, as a caller leaves


def _decode_voice(job: tuple[str, tuple[tuple[str, str], ...], float | None, bool]) -> dict[str, object]:
    voice, lines, noise, grammar_only = job
    config = policy_config(load_flow(ROOT / "flows" / "order_status.yaml"))
    decoder = GrammarDecoder(config.grammars(), second_look=not grammar_only)
    right = confident_wrong = 0
    misses: list[str] = []
    for index, (line, number) in enumerate(lines):
        pcm = _PAD + synthesize_caller(line, voice) + _PAD  # type: ignore[arg-type]
        if noise is not None:
            pcm = add_noise(pcm, noise, seed=index)
        decoded = decoder.recognize(pcm, SEARCH_NUMBERS)
        got = parse_order_number(decoded.text, config.shapes)
        if got == number:
            right += 1
            continue
        acted = decoded.confidence >= MIN_CONFIDENCE and not decoded.open_vocabulary and got is not None
        confident_wrong += acted
        misses.append(f"{number} -> {decoded.text!r} ({decoded.confidence:.2f}{', acted' if acted else ''})")
    return {"voice": voice, "right": right, "confident_wrong": confident_wrong, "misses": misses}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", choices=sorted(SETS), default="all")
    parser.add_argument("--noise", type=float, default=None, help="white noise at this SNR in dB")
    parser.add_argument("--grammar-only", action="store_true", help="no second look")
    parser.add_argument("--voices", default=",".join(CALLER_VOICES))
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    lines = SETS[args.set]
    jobs = [(voice, lines, args.noise, args.grammar_only) for voice in args.voices.split(",")]
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        results = list(pool.map(_decode_voice, jobs))
    print(
        json.dumps(
            {
                "bench": "asr_number_lines",
                "set": args.set,
                "noise_snr_db": args.noise,
                "second_look": not args.grammar_only,
                "lines": len(lines) * len(jobs),
                "right": sum(int(r["right"]) for r in results),  # type: ignore[call-overload]
                "confident_wrong": sum(int(r["confident_wrong"]) for r in results),  # type: ignore[call-overload]
                "voices": results,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
