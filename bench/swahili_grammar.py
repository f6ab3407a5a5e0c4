"""How well the offline recogniser hears Swahili phrases through English phones; prints one JSON object.

    python bench/swahili_grammar.py [--flow flows/order_status.yaml]

pocketsphinx has only an English acoustic model; a Swahili grammar gives Swahili words English phones by
spelling (orchestrator/speech/swahili.py). The only Swahili voice that installs offline is espeak-ng's `sw`
(a formant voice: recognisers do worse on it than on people, see speech/voices.py), so these figures are a
floor measured on synthetic speech, not a claim about callers. Each line is a Swahili intent phrase or an
order number read with Swahili digits, said by espeak-ng's `sw` voice and two variants at two speeds, and
decoded with the grammar the offline brain uses in that state. Reported per condition:

- `heard`: the words decoded carry the intended meaning (the right intent, or the exact order number);
- `acted`: heard right *and* confident enough for the policy to act (`policy.confidence.understood`);
- `wrong_acted`: a wrong meaning the policy would have acted on (the costly error).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from orchestrator.brains.cascade import policy_config  # noqa: E402
from orchestrator.flow import load_flow  # noqa: E402
from orchestrator.speech.asr import GrammarDecoder  # noqa: E402
from orchestrator.speech.grammar import match_intent, parse_order_number  # noqa: E402
from orchestrator.speech.swahili import swahili_caller  # noqa: E402

# (what the caller says, the search it is heard with, the meaning: an intent name or an order number)
LINES: tuple[tuple[str, str, str], ...] = (
    ("ndiyo", "state_narrating", "yes"),
    ("ndio tafadhali", "state_narrating", "yes"),
    ("hapana", "state_narrating", "no"),
    ("hapana asante", "state_narrating", "goodbye"),
    ("kwaheri", "numbers", "goodbye"),
    ("asante kwaheri", "numbers", "goodbye"),
    ("nataka kuongea na mtu", "numbers", "human"),
    ("niunganishe na mtu", "numbers", "human"),
    ("oda yangu iko wapi", "numbers", "status"),
    ("mzigo wangu uko wapi", "numbers", "status"),
    ("angalia namba yangu", "numbers", "by_phone"),
    ("sina namba", "numbers", "by_phone"),
    ("naomba kiingereza", "numbers", "language_en_KE"),
    ("oda yangu ni mbili sifuri tisa tatu moja", "numbers", "20931"),
    ("namba ni tano nne tatu mbili moja", "numbers", "54321"),
    ("sita saba nane tisa sifuri", "numbers", "67890"),
)
VOICES = ("sw", "sw+m3", "sw+f2")
SPEEDS = (140, 170)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flow", default=str(ROOT / "flows" / "order_status.yaml"))
    parser.add_argument("--language", default="sw-KE")
    args = parser.parse_args()
    flow = load_flow(args.flow)
    config = policy_config(flow, args.language)
    decoder = GrammarDecoder(config.grammars())
    phrases = {rule.name: rule.phrases for rule in config.intents}
    understood = config.understood
    conditions: dict[str, dict[str, float | int]] = {}
    misses: list[dict[str, object]] = []
    for voice in VOICES:
        for speed in SPEEDS:
            speaker = swahili_caller(voice, speed)
            heard = acted = wrong_acted = 0
            for text, search, meaning in LINES:
                result = decoder.recognize(speaker(text, 16000), search + config.search_suffix)
                got = _meaning(result.text, config.shapes, phrases)
                right = got == meaning or (got is not None and got.endswith(meaning))
                confident = result.confidence >= understood
                heard += right
                acted += right and confident
                wrong_acted += (not right) and got is not None and confident
                if not right:
                    misses.append(
                        {"voice": voice, "wpm": speed, "said": text, "heard": result.text,
                         "confidence": result.confidence}
                    )
            n = len(LINES)
            conditions[f"{voice}@{speed}wpm"] = {
                "lines": n,
                "heard": round(heard / n, 3),
                "acted": round(acted / n, 3),
                "wrong_acted": round(wrong_acted / n, 3),
            }
    total = len(LINES) * len(VOICES) * len(SPEEDS)
    print(
        json.dumps(
            {
                "bench": "swahili_grammar",
                "language": args.language,
                "voice": "espeak-ng (formant synthesis; no human or neural Swahili voice installs offline)",
                "acoustic_model": "pocketsphinx en-us, Swahili words given English phones by spelling",
                "understood_threshold": understood,
                "conditions": conditions,
                "overall": {
                    key: round(sum(c[key] * c["lines"] for c in conditions.values()) / total, 3)
                    for key in ("heard", "acted", "wrong_acted")
                },
                "misses": misses[:20],
            },
            indent=2,
            ensure_ascii=False,
        )
    )


def _meaning(text: str, shapes: tuple[str, ...], phrases: dict[str, tuple[str, ...]]) -> str | None:
    number = parse_order_number(text, (*shapes, "#####"))
    return number if number is not None else match_intent(text, phrases)


if __name__ == "__main__":
    main()
