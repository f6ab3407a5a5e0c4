"""A state's `listen:` as words for an LLM brain: the answers the state expects and what each leads to.

The offline policy turns `listen:` into its grammar and actions; a model gets the same declaration as a
hint appended to the state's instructions, so one YAML entry steers every brain. Pure text; imports only
the flow model.
"""

from __future__ import annotations

from collections.abc import Mapping

from orchestrator.flow.languages import phrases_for, text_for
from orchestrator.flow.model import ListenEntry

__all__ = ["listen_hint"]


def listen_hint(listen: Mapping[str, ListenEntry], *, language: str = "") -> str | None:
    """One sentence naming each expected answer and what it leads to; None when nothing is declared.

    Phrases and replies are given in the call's `language` where the flow writes one per language.

    >>> from orchestrator.flow.model import ListenEntry
    >>> listen_hint({"yes": ListenEntry(tool="send_tracking_sms"), "no": ListenEntry(say="Alright.")})
    'Expected answers here: yes (call send_tracking_sms); no (say "Alright.").'
    """
    if not listen:
        return None
    answers = [_answer(intent, entry, language) for intent, entry in listen.items()]
    return "Expected answers here: " + "; ".join(answers) + "."


def _answer(intent: str, entry: ListenEntry, language: str) -> str:
    label = "an order number" if intent == "order_number" else intent.replace("_", " ")
    phrases = phrases_for(entry.phrases, language)
    if phrases:
        label += " (" + ", ".join(f'"{phrase}"' for phrase in phrases[:3]) + ")"
    if entry.keypad:
        label += f" (may be typed on the keypad, ending with {entry.end})"
    if entry.key is not None:
        label += f" (or the {entry.key} key)"
    actions: list[str] = []
    say = text_for(entry.say, language, language)
    if say:
        actions.append(f'say "{say}"')
    if entry.tool:
        arguments = ", ".join(f"{k}={v!r}" for k, v in entry.arguments.items())
        actions.append(f"call {entry.tool}" + (f" with {arguments}" if arguments else ""))
    return f"{label} ({' then '.join(actions)})" if actions else label
