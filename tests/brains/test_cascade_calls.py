"""Whole calls with the offline cascade brain: flite callers, pocketsphinx, the flow's policy, espeak-ng."""


import pytest
from aiohttp import web

from orchestrator.brains.cascade import make_offline_brain_factory
from orchestrator.flow import load_flow
from orchestrator.orders.demo import demo_orders_app
from orchestrator.settings import Settings
from orchestrator.simulator import SimulatorOptions
from orchestrator.speech.voices import caller_voice
from orchestrator.testing import run_scripted_call
from tests.flows import OFFLINE_SCRIPTS, ORDER_STATUS

OFFLINE = OFFLINE_SCRIPTS
FLOW = load_flow(ORDER_STATUS)


async def _call(name: str, voice: str = "slt"):
    return await run_scripted_call(
        OFFLINE / f"{name}.yaml",
        flow=FLOW,
        brain_factory=make_offline_brain_factory(FLOW),
        simulator=SimulatorOptions(voice=caller_voice(voice)),  # type: ignore[arg-type]
    )


@pytest.mark.looptime
async def test_cascade_call_tracks_an_order_read_out_by_the_caller():
    """PK20931 is recognised, read back, looked up after the caller's yes, narrated, and goodbye ends the call."""
    record = await _call("track_by_number")
    transcript = record.render()
    assert record.transcript.outcome == "resolved"
    read_back = transcript.index("Order P K two zero nine three one, is that right?")
    assert read_back < transcript.index('caller    "yes"') < transcript.index("tool      lookup_order")
    assert 'lookup_order {"order_number": "PK20931"}' in transcript
    assert "Order P K two zero nine three one is dispatched" in transcript
    assert "end_call" in transcript


@pytest.mark.looptime
async def test_cascade_call_transfers_a_caller_who_asks_for_a_person():
    """"Speak to a person" becomes transfer_to_human and a Dial to the care desk."""
    record = await _call("asks_for_human", voice="kal16")
    assert record.transcript.outcome == "escalated"
    assert "transfer_to_human" in record.render()
    assert record.platform.dialed is not None


@pytest.mark.looptime
async def test_cascade_call_recovers_from_an_unknown_order_number():
    """An unknown number is reported back, the next one is found, and the call ends resolved."""
    record = await _call("unknown_then_found", voice="rms")
    transcript = record.render()
    assert "I could not find order five four three two one" in transcript
    assert 'lookup_order {"order_number": "DX1042"}' in transcript
    assert record.transcript.outcome == "resolved"


@pytest.mark.looptime
async def test_cascade_call_checks_by_phone_when_the_caller_has_no_number():
    """"I don't have it" looks the caller's recent orders up by their phone number."""
    record = await _call("by_phone", voice="awb")
    transcript = record.render()
    assert "lookup_order {}" in transcript
    assert "lookup    phone" in transcript
    assert record.transcript.outcome == "resolved"


@pytest.mark.looptime
async def test_cascade_call_stops_speaking_when_the_caller_barges_in():
    """A barge-in during narration kills the agent's audio; the caller's goodbye is still understood."""
    record = await _call("barge_in_during_narration", voice="kal16")
    transcript = record.render()
    assert record.platform.kill_audio >= 1
    assert "barge-in  caller spoke" in transcript
    assert "end_call" in transcript
    assert record.transcript.outcome == "resolved"


@pytest.mark.looptime
async def test_cascade_call_caller_corrects_a_wrong_number_at_the_read_back():
    """"No, that's wrong" to DX1043 read back asks again; only the corrected DX1042 is looked up.

    The caller has an order on record, so the question again offers it (decision 0031) beside the number.
    """
    record = await _call("corrects_the_read_back", voice="rms")
    transcript = record.render()
    assert "Order D X one zero four three, is that right?" in transcript
    assert "Or tell me the order number you are calling about." in transcript.split("four three, is that right?")[1]
    assert "Order D X one zero four two, is that right?" in transcript
    assert 'lookup_order {"order_number": "DX1043"}' not in transcript
    assert transcript.count("lookup_order {") == 1
    assert 'lookup_order {"order_number": "DX1042"}' in transcript
    assert record.transcript.outcome == "resolved"


@pytest.mark.looptime
async def test_cascade_call_reads_back_a_new_number_said_instead_of_yes():
    """A different number in answer to the read-back replaces the first; only the second is looked up."""
    record = await _call("new_number_instead_of_yes", voice="rms")
    transcript = record.render()
    assert "Order P K two zero nine three one, is that right?" in transcript
    assert "Order D X one zero four two, is that right?" in transcript
    assert transcript.count("lookup_order {") == 1
    assert 'lookup_order {"order_number": "DX1042"}' in transcript
    assert record.transcript.outcome == "resolved"


@pytest.mark.looptime
async def test_cascade_call_returning_caller_asks_is_my_order_out_for_delivery():
    """The headline: no number recited; the prompt offers the order on record, the question looks it up."""
    record = await _call("returning_caller_asks_status", voice="slt")
    transcript = record.render()
    assert "I can see an order placed from this number." in transcript
    assert "tool      lookup_order {}" in transcript
    assert "lookup    phone -> 1 order(s), first PK20931" in transcript
    assert "Order P K two zero nine three one is dispatched" in transcript
    assert record.transcript.outcome == "resolved"


@pytest.mark.looptime
async def test_cascade_call_two_orders_are_named_and_the_caller_picks_one():
    """A caller with two recent orders hears both numbers, picks the first and hears only its status."""
    record = await _call("two_orders_pick_one", voice="kal16")
    transcript = record.render()
    named = "I can see 2 recent orders from this number: D X one zero four two and D X one zero four three."
    assert named in transcript
    assert "Order D X one zero four two is out for delivery" in transcript
    assert transcript.count("lookup_order {") == 1
    assert record.transcript.outcome == "resolved"


@pytest.mark.looptime
async def test_cascade_call_apologises_when_the_orders_api_is_down_before_transferring():
    """lookup_failed: the caller hears an apology, then the transfer, never a bare "Please hold"."""
    record = await _call("orders_api_down", voice="rms")
    transcript = record.render()
    apology = transcript.index("I'm sorry, our order system is not answering right now.")
    assert apology < transcript.index("state     looking_up -> escalating (lookup_failed)") + 200
    assert "Please hold while I connect you" not in transcript
    assert record.transcript.outcome == "escalated"


@pytest.mark.looptime
async def test_cascade_call_reads_an_iso_eta_as_a_day_and_an_hour():
    """DX1055's ETA 2026-11-28T16:00:00+03:00 is spoken "Saturday 28 November, around 4 PM"."""
    record = await _call("iso_eta_spoken", voice="slt")
    transcript = record.render()
    narration = "Order D X one zero five five is confirmed. Expected delivery: Saturday 28 November, around 4 PM."
    assert narration in transcript


@pytest.mark.looptime
async def test_cascade_call_unknown_caller_asking_about_their_order_is_asked_for_the_number():
    """No order placed from this number: a status question gets a request for the order number."""
    record = await _call("unknown_caller_asks_status", voice="slt")
    transcript = record.render()
    assert "I cannot see any recent order placed from this number." in transcript
    assert 'lookup_order {"order_number": "DX1042"}' in transcript
    assert "lookup_order {}" not in transcript
    assert record.transcript.outcome == "resolved"


@pytest.mark.looptime
async def test_cascade_call_records_how_long_the_first_prompt_took():
    """first_prompt_ms is kept in the transcript's JSON (and so in the call store)."""
    record = await _call("track_by_number")
    assert record.transcript.first_prompt_ms is not None
    assert '"first_prompt_ms": ' in record.transcript.to_json()


@pytest.mark.looptime
async def test_cascade_call_hears_a_number_introduced_in_the_callers_own_words():
    """"They sent me a text with D X one zero six zero": the grammar cannot hold the lead-in, the second
    look hears it as words and the number after them; it is read back and looked up."""
    record = await _call("number_after_own_words", voice="kal16")
    transcript = record.render()
    assert "Order D X one zero six zero, is that right?" in transcript
    assert 'lookup_order {"order_number": "DX1060"}' in transcript
    assert record.transcript.outcome == "resolved"


@pytest.mark.looptime
async def test_cascade_call_known_caller_asking_in_their_own_words_hears_their_order():
    """No phrase of the flow's: the caller's words are read for the status intent, a lookup by phone."""
    record = await _call("status_in_own_words", voice="slt")
    transcript = record.render()
    assert "tool      lookup_order {}" in transcript
    assert "Order P K two zero nine three one is dispatched" in transcript
    assert "transfer_to_human" not in transcript
    assert record.transcript.outcome == "resolved"



@pytest.mark.looptime
async def test_cascade_call_answers_a_withheld_caller_and_never_looks_them_up_by_phone(aiohttp_server):
    """No `From` at all: the call is answered and asks for the order number; "where is my order?" finds
    nothing by phone without asking the shop, and the order named is read without its delivery area."""
    asked: list[dict[str, str]] = []

    @web.middleware
    async def note_query(request: web.Request, handler):  # type: ignore[no-untyped-def]
        asked.append(dict(request.query))
        return await handler(request)

    shop = demo_orders_app()
    shop.middlewares.append(note_query)
    server = await aiohttp_server(shop)
    record = await run_scripted_call(
        OFFLINE / "withheld_caller_asks_status.yaml",
        flow=FLOW,
        settings=Settings(fallback_voice="synthetic", orders_base_url=str(server.make_url(""))),
        brain_factory=make_offline_brain_factory(FLOW),
        simulator=SimulatorOptions(voice=caller_voice("slt")),
    )
    transcript = record.render()
    assert "from unknown" in transcript
    assert "Please tell me your order number" in transcript
    assert asked == [{"order_number": "DX1042"}]  # never `phone=`
    assert "Westlands" not in transcript  # DX1042's delivery area: not this caller's to hear
    assert record.transcript.outcome == "resolved"


@pytest.mark.looptime
@pytest.mark.parametrize("voice", ["kal16", "rms"])
async def test_cascade_call_over_an_8_khz_stream_tracks_an_order(voice):
    """A narrowband call (`outputSamplingRate` 8000, nothing above 4 kHz): the number is heard, read back,
    looked up and narrated as on a wideband line (decision 0033)."""
    record = await run_scripted_call(
        OFFLINE / "track_by_number.yaml",
        flow=FLOW,
        settings=Settings(fallback_voice="synthetic", sample_rate=8000),
        brain_factory=make_offline_brain_factory(FLOW),
        simulator=SimulatorOptions(voice=caller_voice(voice), sample_rate=8000),  # type: ignore[arg-type]
    )
    transcript = record.render()
    assert 'lookup_order {"order_number": "PK20931"}' in transcript
    assert "Order P K two zero nine three one is dispatched" in transcript
    assert record.transcript.outcome == "resolved"
