"""What each realtime speech-to-speech model accepts mid-call, so how a state change reaches it.

Layer: brain adapters' shared table. Imports nothing of flows, sessions or sockets.

    caps = capabilities_for("gemini", "gemini-3.1-flash-live-preview")
    caps.name                                   # "gemini-3.1"
    choose_delivery(caps, call_waiting=False)   # "realtime_text"

Models change faster than adapters: every wire rule an adapter follows is keyed on a row of this
table, never on a model name inside the adapter. A name that matches no row gets the family's most
conservative row (every restriction a known model has) and one warning log line. The rows, their
sources and what is still unproven against the real services: docs/brains/capabilities.md.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal, TypeAlias

import structlog

__all__ = [
    "DELIVERIES",
    "Delivery",
    "Family",
    "ModelCapabilities",
    "ROWS",
    "capabilities_for",
    "choose_delivery",
]

log = structlog.get_logger(__name__)

Family: TypeAlias = Literal["gemini", "openai"]
# How a state change (its instructions and allowed tools) reaches the model:
#   tool_result     in the answer to the tool call that caused the change (only while one waits)
#   client_content  a user text turn in the conversation (Gemini `client_content`, turn complete)
#   realtime_text   a realtime text input (Gemini `realtime_input.text`): does not end the model's
# turn
#   context_update  the session's instructions and tools replaced in place (OpenAI `session.update`)
#   reconnect       a new connection resumed with the session handle, its setup carrying the new
# instructions
Delivery: TypeAlias = Literal[
    "tool_result", "client_content", "realtime_text", "context_update", "reconnect"
]
DELIVERIES: tuple[Delivery, ...] = (
    "tool_result",
    "client_content",
    "realtime_text",
    "context_update",
    "reconnect",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelCapabilities:
    """One row: what a model accepts mid-session; its state-change strategies, preferred first."""

    family: Family
    name: str  # the row's label, shown in logs and `brain check`
    prefixes: tuple[str, ...]  # model names starting with one of these use this row
    # Text turns (client content) accepted after the session started; False: only to seed initial
    # history.
    client_content_mid_session: bool
    # Seeding history with client content needs `history_config.initial_history_in_client_content`.
    history_needs_config: bool
    # Instructions and tools replaceable mid-session, and honoured (send_context_update /
    # session.update).
    instructions_mid_session: bool
    # The server's own barge-in can be switched off (Gemini NO_INTERRUPTION, OpenAI
    # interrupt_response).
    server_interruption_off: bool
    # sync: the model waits for each tool answer; async: it goes on talking and the answer is
    # scheduled.
    function_calling: Literal["sync", "async"]
    # A dropped or expiring connection can be resumed with a server-issued handle.
    resumption: bool
    # How a state change reaches the model, first applicable wins ("tool_result" only while a call
    # waits).
    delivery: tuple[Delivery, ...]
    # Known: a row from docs or field reports. Not known: the conservative fallback for unmatched
    # names.
    known: bool = True


ROWS: tuple[ModelCapabilities, ...] = (
    ModelCapabilities(
        family="gemini",
        name="gemini-2.5",
        prefixes=("gemini-2.5", "gemini-live-2.5", "gemini-2.0", "gemini-live-2.0"),
        client_content_mid_session=True,
        history_needs_config=False,
        instructions_mid_session=False,  # send_context_update: not documented for 2.5
        server_interruption_off=True,
        function_calling="sync",
        resumption=True,
        delivery=("tool_result", "client_content"),
    ),
    ModelCapabilities(
        family="gemini",
        name="gemini-3.1",
        prefixes=("gemini-3.1", "gemini-3.0", "gemini-3-"),
        client_content_mid_session=False,  # 1007 "invalid argument" after the initial history
        history_needs_config=True,
        instructions_mid_session=False,  # field reports: context updates silently ignored
        server_interruption_off=True,
        function_calling="sync",  # docs: asynchronous function calling not supported yet
        resumption=True,
        delivery=("tool_result", "realtime_text"),
    ),
    ModelCapabilities(
        family="gemini",
        name="gemini-3.8",
        prefixes=("gemini-3.8",),
        # Docs allow client content all session, but turn_complete=true cuts the model's reply off:
        # the
        # adapter does not use it mid-call, so a non-interruptible state stays uncut.
        client_content_mid_session=True,
        history_needs_config=True,
        instructions_mid_session=False,  # not documented as honoured: unproven
        server_interruption_off=True,
        function_calling="async",  # NON_BLOCKING by default; answers carry a scheduling
        resumption=True,
        delivery=("tool_result", "realtime_text"),
    ),
    ModelCapabilities(
        family="openai",
        name="gpt-realtime",
        prefixes=("gpt-realtime", "gpt-4o-realtime", "gpt-4o-mini-realtime"),
        client_content_mid_session=True,  # conversation.item.create at any time
        history_needs_config=False,
        instructions_mid_session=True,  # session.update replaces instructions and tools
        server_interruption_off=True,  # turn_detection.interrupt_response = false
        function_calling="sync",  # the model speaks again only on response.create
        resumption=False,  # a new connection is a new session: the adapter replays a summary
        delivery=("context_update",),
    ),
)

# Unmatched names: assume every restriction a known model of the family has. Gemini: 3.1's rules (no
# mid-session client content, history only with history_config, ignored context updates), with
# answers
# handled as async (a scheduling on a blocking call's answer is ignored, so handling both is safe).
_CONSERVATIVE: dict[Family, ModelCapabilities] = {
    "gemini": replace(
        ROWS[1], name="gemini-unknown", prefixes=(), function_calling="async", known=False
    ),
    "openai": replace(ROWS[3], name="openai-unknown", prefixes=(), known=False),
}


def capabilities_for(family: Family, model: str) -> ModelCapabilities:
    """The row for `model` ("models/" ignored); an unknown name: the conservative row, logged."""
    name = model.strip().lower().removeprefix("models/")
    for row in ROWS:
        if row.family == family and name.startswith(row.prefixes):
            return row
    fallback = _CONSERVATIVE[family]
    log.warning(
        "model_capabilities_unknown",
        family=family,
        model=model,
        row=fallback.name,
        delivery=list(fallback.delivery),
    )
    return fallback


def choose_delivery(caps: ModelCapabilities, *, call_waiting: bool) -> Delivery:
    """How this state change reaches the model: the row's first strategy that applies now."""
    for delivery in caps.delivery:
        if delivery == "tool_result" and not call_waiting:
            continue
        return delivery
    return "reconnect"  # a row with no usable strategy: only a new setup can carry new instructions
