"""The offline policy as a conversation: rejection, known callers, several orders, words for every outcome."""


from orchestrator.brains.base import CallInfo, StateBrief, ToolCall
from orchestrator.brains.cascade import policy_config
from orchestrator.brains.policy import PolicyDialogue
from orchestrator.flow import load_flow, load_flow_text
from orchestrator.speech.asr import Recognition
from tests.flows import ORDER_STATUS

FLOW_PATH = ORDER_STATUS
FLOW = load_flow(FLOW_PATH)
TOOLS = ("lookup_order", "transfer_to_human", "end_call")
IDENTIFYING = StateBrief(name="identifying", instructions=None, tools=TOOLS)
NARRATING = StateBrief(name="narrating", instructions=None, tools=TOOLS)
ESCALATING = StateBrief(name="escalating", instructions=None, tools=())
NOT_UNDERSTOOD = "Sorry, I did not catch that. Please say your order number, or ask for a person."
KNOWN_CALLER = (
    "I can see an order placed from this number. Shall I check it for you? "
    "Or tell me the order number you are calling about."
)
DX1042 = {"order_number": "DX1042", "order_number_spoken": "D X one zero four two",
          "status_text": "out for delivery", "eta": "today between 4 and 6 PM"}
DX1043 = {"order_number": "DX1043", "order_number_spoken": "D X one zero four three",
          "status_text": "delivered", "eta": ""}


def _dialogue(caller_orders: int | None = 0, flow=FLOW) -> PolicyDialogue:
    dialogue = PolicyDialogue(policy_config(flow))
    dialogue.begin(
        CallInfo(call_sid="HD_1", caller="+254712345678", sample_rate=16000, system_prompt="",
                 voice="en-us", language="en-KE", tools=(), caller_orders=caller_orders)
    )
    return dialogue


def _heard(text: str, confidence: float = 1.0) -> Recognition:
    return Recognition(text=text, search="numbers", speech_ms=900, decode_ms=40.0, confidence=confidence)


async def _steps(iterator) -> list:
    return [step async for step in iterator]


async def _say(dialogue: PolicyDialogue, text: str, confidence: float = 1.0) -> list:
    return await _steps(dialogue.on_caller(_heard(text, confidence)))


def _tools(steps: list) -> list[tuple[str, dict]]:
    return [(step.name, dict(step.arguments)) for step in steps if isinstance(step, ToolCall)]


def _words(steps: list) -> list[str]:
    return [step for step in steps if isinstance(step, str)]


async def _identifying(caller_orders: int | None = 0, flow=FLOW) -> tuple[PolicyDialogue, list]:
    dialogue = _dialogue(caller_orders, flow)
    return dialogue, await _steps(dialogue.on_state(IDENTIFYING))


# --- rejection ------------------------------------------------------------------------------


async def test_a_low_confidence_number_is_not_understood_and_not_read_back():
    """Below `understood` confidence an order number is a reprompt, never a read-back or a lookup."""
    dialogue, _ = await _identifying()
    assert await _say(dialogue, "d x one oh four two", confidence=0.2) == [NOT_UNDERSTOOD]


async def test_a_low_confidence_goodbye_never_ends_the_call():
    """A goodbye the recogniser is unsure of is not understood: no end_call, no question."""
    dialogue, _ = await _identifying()
    steps = await _say(dialogue, "goodbye", confidence=0.3)
    assert steps == [NOT_UNDERSTOOD]


async def test_a_sure_goodbye_ends_the_call_on_one_turn():
    """At or above `sure` confidence the goodbye intent ends the call at once."""
    dialogue, _ = await _identifying()
    steps = await _say(dialogue, "no thanks goodbye", confidence=0.9)
    assert _tools(steps) == [("end_call", {})]


async def test_a_merely_plausible_goodbye_is_confirmed_first():
    """Between `understood` and `sure`, "goodbye" is asked about; yes then ends the call."""
    dialogue, _ = await _identifying()
    assert await _say(dialogue, "goodbye", confidence=0.6) == ["Would you like to end the call?"]
    steps = await _say(dialogue, "yes", confidence=0.6)
    assert steps[0] == "Thank you for calling Duka Express. Goodbye."
    assert _tools(steps) == [("end_call", {})]


async def test_no_to_the_goodbye_question_carries_on():
    """"No" to "Would you like to end the call?" keeps the call going and calls nothing."""
    dialogue, _ = await _identifying()
    await _say(dialogue, "goodbye", confidence=0.6)
    steps = await _say(dialogue, "no")
    assert steps == ["Alright. What else can I help you with?"]


async def test_a_merely_plausible_request_for_a_person_is_confirmed_first():
    """"An agent" heard without certainty asks before transferring; yes transfers."""
    dialogue, _ = await _identifying()
    assert await _say(dialogue, "an agent", confidence=0.6) == [
        "Would you like me to connect you to a colleague?"
    ]
    assert _tools(await _say(dialogue, "yes please")) == [
        ("transfer_to_human", {"reason": "caller asked for a person"})
    ]


async def test_two_turns_not_understood_offer_a_person():
    """A reprompt first, then the offer of a person; yes to the offer transfers."""
    dialogue, _ = await _identifying()
    assert await _say(dialogue, "hello") == [NOT_UNDERSTOOD]
    assert await _say(dialogue, "mumble", confidence=0.1) == [
        "Sorry, I still did not understand. Would you like me to connect you to a colleague?"
    ]
    assert _tools(await _say(dialogue, "yes")) == [
        ("transfer_to_human", {"reason": "caller asked for a person"})
    ]


async def test_noise_repeats_the_prompt_but_never_brings_the_offer_of_a_person():
    """A cough has no words: the caller hears the prompt again, and it is not counted as a miss."""
    dialogue, _ = await _identifying()
    assert await _say(dialogue, "", confidence=0.0) == [NOT_UNDERSTOOD]
    assert await _say(dialogue, "", confidence=0.0) == [NOT_UNDERSTOOD]
    assert await _say(dialogue, "mumble", confidence=0.1) == [NOT_UNDERSTOOD]


async def test_a_goodbye_inside_words_the_grammar_forced_is_confirmed_not_acted_on():
    """A clear "bye" in an utterance that is otherwise unexplained (carrier phrases soaking up other
    words) does not end the call on one turn: the whole utterance must be explained too."""
    dialogue, _ = await _identifying()
    heard = Recognition(text="hi it's bye i want to track order", search="numbers", speech_ms=3000,
                        decode_ms=40.0, confidence=0.92, whole_confidence=0.06)
    assert await _steps(dialogue.on_caller(heard)) == ["Would you like to end the call?"]


async def test_no_to_the_offer_of_a_person_asks_for_the_number_again():
    """Declining the offer of a person repeats the state's own question."""
    dialogue, _ = await _identifying()
    await _say(dialogue, "hello")
    await _say(dialogue, "hello")
    assert await _say(dialogue, "no") == ["Please tell me your order number. It looks like D X 1 0 4 2."]


async def test_a_low_confidence_answer_to_the_read_back_repeats_it():
    """An unsure "yes" to a read-back is not taken: the question is asked again."""
    dialogue, _ = await _identifying()
    await _say(dialogue, "d x one oh four two")
    assert await _say(dialogue, "yes", confidence=0.1) == ["Order D X one zero four two, is that right?"]
    assert _tools(await _say(dialogue, "yes")) == [("lookup_order", {"order_number": "DX1042"})]


# --- the caller's own words (open vocabulary) ------------------------------------------------


def _own_words(text: str, confidence: float = 0.9) -> Recognition:
    return Recognition(text=text, search="numbers", speech_ms=2500, decode_ms=40.0, confidence=confidence,
                       open_vocabulary=True)


async def test_a_known_callers_question_in_their_own_words_is_a_lookup_by_phone():
    """No phrase of the flow, but its words ("arrived", "order") are the status intent's alone."""
    dialogue, _ = await _identifying(caller_orders=1)
    steps = await _steps(dialogue.on_caller(_own_words("i ordered a fridge and it has not arrived")))
    assert _tools(steps) == [("lookup_order", {})]


async def test_a_goodbye_with_a_question_after_it_is_not_how_a_call_ends():
    """Whisper heard "Hello? Yes, hi. I'd like to check on my things..." as "hello yes bye i'd like...":
    a goodbye followed by a question is set aside, and the question is what the caller asked."""
    dialogue, _ = await _identifying(caller_orders=1)
    heard = _own_words("hello yes bye i'd like to check on my things when are they coming to thika", 0.95)
    assert _tools(await _steps(dialogue.on_caller(heard))) == [("lookup_order", {})]


async def test_a_goodbye_followed_by_nothing_the_flow_knows_is_not_understood():
    """"bye do you people also sell gas cylinders" (a greeting misheard, then off-topic): asked again."""
    dialogue, _ = await _identifying()
    steps = await _steps(dialogue.on_caller(_own_words("bye do you people also sell gas cylinders", 0.95)))
    assert steps == [NOT_UNDERSTOOD]


async def test_a_known_caller_whose_hello_was_heard_as_bye_hears_their_orders():
    """"bye i am calling about my shoes can i pick them up": nothing the flow knows, so a lookup by phone."""
    dialogue, _ = await _identifying(caller_orders=2)
    heard = _own_words("bye i am calling about my shoes can i pick them up", 0.95)
    assert _tools(await _steps(dialogue.on_caller(heard))) == [("lookup_order", {})]


async def test_a_goodbye_at_the_end_with_pleasantries_after_it_ends_the_call():
    """What callers add after a goodbye ("thank you very much, have a nice day") does not unmake it."""
    dialogue = _dialogue()
    await _steps(dialogue.on_state(NARRATING))
    heard = _own_words("okay that is all bye thank you very much have a nice day", 0.95)
    assert _tools(await _steps(dialogue.on_caller(heard))) == [("end_call", {})]


async def test_a_yes_that_answers_nothing_does_not_hide_the_question_after_it():
    """Nothing was asked, so "yes" is a filler: the rider question after it is what the caller wants (here a
    caller with no orders on record, who is told so and asked for the number)."""
    dialogue, _ = await _identifying(caller_orders=0)
    heard = _own_words("yes i am waiting on some groceries is your rider coming soon", 0.95)
    assert await _steps(dialogue.on_caller(heard)) == [
        "I cannot see any recent order placed from this number. Please tell me your order number."
    ]


async def test_the_states_own_question_still_hears_a_plain_no_in_open_words():
    """"Anything else?" gives no its meaning: "no that's all thanks" ends the call."""
    dialogue = _dialogue()
    await _steps(dialogue.on_state(NARRATING))
    assert _tools(await _steps(dialogue.on_caller(_own_words("no thanks", 0.95)))) == [("end_call", {})]


async def test_a_letter_heard_as_one_that_sounds_alike_still_makes_the_number_read_back():
    """Whisper heard slt's "P K two zero nine four four" as "d k two zero nine four four": read back as P K."""
    dialogue, _ = await _identifying()
    heard = _own_words("d k two zero nine four four", 0.95)
    assert await _steps(dialogue.on_caller(heard)) == ["Order P K two zero nine four four, is that right?"]


async def test_a_caller_who_corrects_their_number_has_the_last_one_read_back():
    """"P K two zero nine four four, wait, no, sorry, P K two zero nine three one": the last number said."""
    dialogue, _ = await _identifying()
    heard = _own_words("it's p k two zero nine four four wait no sorry p k two zero nine three one", 0.95)
    assert await _steps(dialogue.on_caller(heard)) == ["Order P K two zero nine three one, is that right?"]


async def test_a_request_for_a_person_in_the_callers_own_words_is_asked_about_first():
    """Keywords alone never transfer, however sure the recogniser: the caller is asked; yes transfers."""
    dialogue, _ = await _identifying()
    steps = await _steps(dialogue.on_caller(_own_words("honestly i need a real human being", 0.99)))
    assert steps == ["Would you like me to connect you to a colleague?"]
    assert _tools(await _say(dialogue, "yes")) == [
        ("transfer_to_human", {"reason": "caller asked for a person"})
    ]


async def test_one_key_word_in_loosely_heard_words_raises_no_question_about_a_person():
    """slt's "the number on my receipt is P K ..." at 30 dB, heard as garbled words holding "someone" (0.69):
    below `sure`, a key word alone is not understood, so a "Yes." meant for a read-back cannot transfer."""
    dialogue, _ = await _identifying()
    garbled = _own_words("yeah someone her and my receive if he gave vieira mind free one", 0.69)
    assert await _steps(dialogue.on_caller(garbled)) == [NOT_UNDERSTOOD]
    assert _tools(await _say(dialogue, "yes")) == []


async def test_two_key_words_in_loosely_heard_words_are_still_asked_about():
    """awb's "Can I talk to a real person about it?" heard without the "a" of the phrase, at 0.6."""
    dialogue, _ = await _identifying()
    steps = await _steps(dialogue.on_caller(_own_words("can i talk to real person about it", 0.6)))
    assert steps == ["Would you like me to connect you to a colleague?"]


async def test_a_flow_phrase_in_the_second_looks_guess_is_asked_about_before_a_transfer():
    """The second look's language model ran a read-out number into "speak to a human": asked, never acted on.

    A Whisper transcript holding the same phrase would transfer at once; a rescued guess does not.
    """
    dialogue, _ = await _identifying()
    guess = Recognition(text="hello it is speak to a human can i", search="numbers", speech_ms=3200,
                        decode_ms=40.0, confidence=0.95, open_vocabulary=True, rescued=True)
    steps = await _steps(dialogue.on_caller(guess))
    assert _tools(steps) == []
    assert steps == ["Would you like me to connect you to a colleague?"]
    assert await _say(dialogue, "no") == ["Alright. What else can I help you with?"]


async def test_a_key_word_amid_forced_fillers_is_asked_about_before_a_transfer():
    """"Hi, any update on my delivery?" forced onto "hi an agent the number is": the key words fit (0.94),
    the utterance as a whole does not (0.35, below `sure_whole`), so the caller is asked first."""
    dialogue, _ = await _identifying()
    forced = Recognition(text="hi an agent the number is", search="numbers", speech_ms=1900, decode_ms=1.0,
                         confidence=0.94, whole_confidence=0.35)
    assert await _steps(dialogue.on_caller(forced)) == ["Would you like me to connect you to a colleague?"]


async def test_a_request_for_a_person_heard_whole_transfers_at_once():
    """The same key words with the whole utterance explained are sure: no question in the way."""
    dialogue, _ = await _identifying()
    clear = Recognition(text="can i talk to an agent please", search="numbers", speech_ms=1900, decode_ms=1.0,
                        confidence=0.94, whole_confidence=0.87)
    assert _tools(await _steps(dialogue.on_caller(clear))) == [
        ("transfer_to_human", {"reason": "caller asked for a person"})
    ]


async def test_the_same_phrase_in_a_transcript_transfers_at_once():
    """Open words from a transcriber (not a rescue) holding a whole flow phrase are as sure as a grammar's."""
    dialogue, _ = await _identifying()
    steps = await _steps(dialogue.on_caller(_own_words("hello can i speak to a human", 0.95)))
    assert _tools(steps) == [("transfer_to_human", {"reason": "caller asked for a person"})]


async def test_a_goodbye_found_by_keywords_is_asked_about_first():
    """"thanks that's everything bye now" holds no goodbye phrase whole: the call is not ended on it."""
    dialogue, _ = await _identifying()
    steps = await _steps(dialogue.on_caller(_own_words("thanks that's everything for now", 0.95)))
    assert steps == ["Would you like to end the call?"]


async def test_the_callers_own_words_holding_no_intent_are_not_understood():
    """Words with no intent's keywords are a reprompt, as any turn not understood."""
    dialogue, _ = await _identifying()
    assert await _steps(dialogue.on_caller(_own_words("sorry my little boy is shouting"))) == [NOT_UNDERSTOOD]


# --- known callers --------------------------------------------------------------------------


async def test_a_known_caller_is_offered_the_order_placed_from_their_number():
    """With orders on record the first prompt says so and asks; yes looks them up by phone."""
    dialogue, greeting = await _identifying(caller_orders=1)
    assert greeting == [KNOWN_CALLER]
    assert dialogue.listening() == "numbers"
    steps = await _say(dialogue, "yes please")
    assert steps[0] == "Let me check the orders placed from this number."
    assert _tools(steps) == [("lookup_order", {})]


async def test_a_known_caller_asking_is_my_order_out_for_delivery_gets_a_lookup_by_phone():
    """The seed's headline question, with no number, becomes a lookup by the caller's number."""
    dialogue, _ = await _identifying(caller_orders=2)
    assert _tools(await _say(dialogue, "hi is my order out for delivery")) == [("lookup_order", {})]


async def test_a_known_callers_first_turn_not_understood_becomes_a_lookup_by_phone():
    """Whatever a known caller says first, if it is not understood, their orders are looked up."""
    dialogue, _ = await _identifying(caller_orders=1)
    assert _tools(await _say(dialogue, "has the sendy rider left with my chair", confidence=0.1)) == [
        ("lookup_order", {})
    ]


async def test_a_known_caller_can_still_give_an_order_number():
    """An order number in answer to the known-caller prompt is read back as usual."""
    dialogue, _ = await _identifying(caller_orders=1)
    assert await _say(dialogue, "p k two zero nine three one") == [
        "Order P K two zero nine three one, is that right?"
    ]


def _fitted(number_text: str, words: str) -> Recognition:
    """A number the second look fitted among open words with no digit heard."""
    return Recognition(text=number_text, search="numbers", speech_ms=3200, decode_ms=40.0, confidence=0.8,
                       heard_as_words=words)


async def test_a_known_callers_status_question_fitted_to_a_number_is_a_lookup_by_phone():
    """"Is my parcel on the way?" came back "...is my parcel oh one two one eight": the question stands."""
    dialogue, _ = await _identifying(caller_orders=1)
    fitted = _fitted("sorry about that is my parcel oh one two one eight", "sorry about that is my parcel on the way")
    steps = await _steps(dialogue.on_caller(fitted))
    assert steps[0] == "Let me check the orders placed from this number."
    assert _tools(steps) == [("lookup_order", {})]


async def test_a_caller_not_known_yet_whose_question_was_fitted_to_a_number_is_looked_up_by_phone():
    """The orders API was down or slow when the call began, so nobody knows yet whether this caller has
    orders: "I'm asking about my coffee delivery" fitted to a number is still their question, and the
    lookup's own outcome answers it (here the apology of a failed lookup, not a made-up number read back).
    """
    dialogue, greeting = await _identifying(caller_orders=None)
    assert greeting == ["Please tell me your order number. It looks like D X 1 0 4 2."]  # nothing offered
    fitted = _fitted("good afternoon i'm asking about my nine oh one three", "good afternoon i'm asking about my coffee delivery")
    steps = await _steps(dialogue.on_caller(fitted))
    assert _tools(steps) == [("lookup_order", {})]
    await _steps(dialogue.on_state(IDENTIFYING))
    result = {"found": False, "error": "the order system is not answering"}
    assert await _steps(dialogue.on_tool_result(steps[-1], result)) == [
        "I'm sorry, I cannot reach our order system right now."
    ]


async def test_a_caller_not_known_yet_and_not_understood_is_looked_up_by_phone():
    """Before any lookup, a turn not understood from a caller who may have orders looks them up."""
    dialogue, _ = await _identifying(caller_orders=None)
    assert _tools(await _say(dialogue, "what's going on with my", confidence=0.2)) == [("lookup_order", {})]


async def test_a_withheld_number_is_never_looked_up_by_phone():
    """No caller number: nothing to look up by, so a turn not understood is a reprompt."""
    dialogue = PolicyDialogue(policy_config(FLOW))
    dialogue.begin(CallInfo(call_sid="HD_2", caller=None, sample_rate=16000, system_prompt="",
                            voice="en-us", language="en-KE", tools=()))
    await _steps(dialogue.on_state(IDENTIFYING))
    assert await _say(dialogue, "mumble", confidence=0.1) == [NOT_UNDERSTOOD]


async def test_a_number_fitted_to_an_unknown_callers_question_is_read_back():
    """With no orders on record there is nothing to look up by phone: the number is read back."""
    dialogue, _ = await _identifying(caller_orders=0)
    fitted = _fitted("sorry about that is my parcel oh one two one eight", "sorry about that is my parcel on the way")
    assert await _steps(dialogue.on_caller(fitted)) == ["Order zero one two one eight, is that right?"]


async def test_a_known_callers_number_after_their_own_words_is_read_back():
    """Open words with no status phrase ("it says the excellence era"): the number found among them."""
    dialogue, _ = await _identifying(caller_orders=1)
    fitted = _fitted("it says d x one zero four two", "it says the excellence era far to you")
    assert await _steps(dialogue.on_caller(fitted)) == ["Order D X one zero four two, is that right?"]


async def test_a_known_callers_question_by_its_key_words_fitted_to_a_number_is_a_lookup_by_phone():
    """kal16's "Hello, I'm calling to find out where my stuff is" at 30 dB: "where" is the status intent's."""
    dialogue, _ = await _identifying(caller_orders=1)
    fitted = _fitted("hello five oh one two five the number is", "hello i'm calling to find out where my stuff is")
    assert _tools(await _steps(dialogue.on_caller(fitted))) == [("lookup_order", {})]


async def test_a_known_caller_naming_their_order_number_hears_it_read_back():
    """"My order number is..." holds the status phrase "my order", but the caller is giving a number."""
    dialogue, _ = await _identifying(caller_orders=1)
    fitted = _fitted("my order number is d x one zero four two", "my order number is the excellence era far to you")
    assert await _steps(dialogue.on_caller(fitted)) == ["Order D X one zero four two, is that right?"]


async def test_a_known_caller_saying_no_to_a_number_read_back_is_offered_their_orders_again():
    """Words fitted to a number and read back: after the caller's no, their orders by phone, or a number."""
    dialogue, _ = await _identifying(caller_orders=1)
    await _say(dialogue, "thanks yes seven nine oh three nine order number")
    assert await _say(dialogue, "no") == [KNOWN_CALLER]
    steps = await _say(dialogue, "yes please")
    assert _tools(steps) == [("lookup_order", {})]


async def test_an_unknown_caller_saying_no_to_a_number_read_back_is_asked_for_it_again():
    dialogue, _ = await _identifying()
    await _say(dialogue, "d x one oh four three")
    assert await _say(dialogue, "no") == ["Sorry about that. Please say the order number again."]
    assert await _say(dialogue, "d x one oh four two") == ["Order D X one zero four two, is that right?"]


async def test_a_known_caller_not_understood_later_before_any_lookup_hears_their_orders():
    """Misheard as wanting a person, then not understood: still nothing looked up, so the orders by phone.

    "Am I talking to a machine?" was asked about a colleague; "Okay. Where's my fridge?" (heard at 0.41)
    used to bring that question back until the caller gave up.
    """
    dialogue, _ = await _identifying(caller_orders=1)
    assert await _say(dialogue, "am i talking to an agent", confidence=0.6) == [
        "Would you like me to connect you to a colleague?"
    ]
    steps = await _say(dialogue, "okay where's my fridge", confidence=0.41)
    assert steps[0] == "Let me check the orders placed from this number."
    assert _tools(steps) == [("lookup_order", {})]


async def test_a_known_caller_who_said_an_order_number_is_asked_again_not_looked_up_by_phone():
    """An unclear answer to a read-back repeats it: the caller is working by number."""
    dialogue, _ = await _identifying(caller_orders=1)
    await _say(dialogue, "d x one oh four three")
    assert await _say(dialogue, "no that's wrong", confidence=0.2) == [
        "Order D X one zero four three, is that right?"
    ]


async def test_after_a_lookup_not_understood_is_a_reprompt_again():
    """Only turns before the first lookup fall back to the orders by phone; later ones are reprompted."""
    dialogue, _ = await _identifying(caller_orders=1)
    call = (await _say(dialogue, "mumble", confidence=0.1))[-1]
    await _steps(dialogue.on_state(NARRATING))
    await _steps(dialogue.on_tool_result(call, {"found": True, "order": DX1042, "orders": [DX1042]}))
    assert _tools(await _say(dialogue, "mumble", confidence=0.1)) == []


async def test_a_caller_with_no_orders_on_record_is_asked_for_the_number():
    """No order placed from this number: the usual prompt, and a status question asks for the number."""
    dialogue, greeting = await _identifying(caller_orders=0)
    assert greeting == ["Please tell me your order number. It looks like D X 1 0 4 2."]
    assert await _say(dialogue, "where is my order") == [
        "I cannot see any recent order placed from this number. Please tell me your order number."
    ]
    assert await _say(dialogue, "mumble", confidence=0.1) == [NOT_UNDERSTOOD]


async def test_a_lookup_by_phone_that_finds_nothing_says_so_and_asks_for_the_number():
    """Not found by phone names the phone, not an order number the caller never said."""
    dialogue, _ = await _identifying(caller_orders=None)
    call = (await _say(dialogue, "i don't have it"))[-1]
    await _steps(dialogue.on_state(IDENTIFYING))
    steps = await _steps(dialogue.on_tool_result(call, {"found": False, "order_number": None}))
    assert steps == [
        "I could not find a recent order placed from this number. Please tell me your order number."
    ]


# --- several orders -------------------------------------------------------------------------


async def _two_found(multiple_orders: str = "ask") -> tuple[PolicyDialogue, list]:
    flow = FLOW
    if multiple_orders != "ask":
        text = FLOW_PATH.read_text().replace("multiple_orders: ask", f"multiple_orders: {multiple_orders}")
        flow = load_flow_text(text)
    dialogue, _ = await _identifying(caller_orders=2, flow=flow)
    call = (await _say(dialogue, "yes"))[-1]
    await _steps(dialogue.on_state(NARRATING))
    result = {"found": True, "order": DX1042, "orders": [DX1042, DX1043], "other_orders": ["DX1043"]}
    return dialogue, await _steps(dialogue.on_tool_result(call, result))


async def test_several_orders_are_named_and_the_caller_is_asked_which_one():
    """`multiple_orders: ask` names both orders and listens for a choice."""
    dialogue, steps = await _two_found()
    assert steps == [
        "I can see 2 recent orders from this number: D X one zero four two and D X one zero four three. "
        "Which one would you like to hear about?"
    ]
    assert dialogue.listening() == "choose_order"


async def test_the_caller_picks_one_of_several_orders_by_position():
    """"The second one" narrates the older order without another lookup."""
    dialogue, _ = await _two_found()
    steps = await _say(dialogue, "the second one please")
    assert steps == ["Order D X one zero four three is delivered. Is there anything else?"]


async def test_the_caller_picks_one_of_several_orders_by_its_number():
    """Saying one of the listed numbers narrates it at once (no read-back: it is on the list)."""
    dialogue, _ = await _two_found()
    steps = await _say(dialogue, "d x one oh four two")
    assert steps == [
        "Order D X one zero four two is out for delivery. Expected delivery: today between 4 and 6 PM. "
        "Is there anything else?"
    ]


async def test_all_reads_every_order_briefly():
    """`multiple_orders: all` reads each order in one sentence, then asks if there is anything else."""
    _, steps = await _two_found("all")
    assert steps == [
        "Order D X one zero four two is out for delivery. Order D X one zero four three is delivered. "
        "Is there anything else?"
    ]


async def test_newest_narrates_only_the_first_order():
    """`multiple_orders: newest` narrates the most recent order as if it were the only one."""
    _, steps = await _two_found("newest")
    assert steps[0].startswith("Order D X one zero four two is out for delivery.")


# --- every outcome has words -----------------------------------------------------------------


async def test_a_failed_lookup_gets_an_apology_where_the_caller_can_act():
    """In a state with tools, lookup_failed is apologised for."""
    dialogue, _ = await _identifying(caller_orders=None)
    call = (await _say(dialogue, "i don't have it"))[-1]
    await _steps(dialogue.on_state(IDENTIFYING))
    result = {"found": False, "error": "the order system is not answering"}
    assert await _steps(dialogue.on_tool_result(call, result)) == [
        "I'm sorry, I cannot reach our order system right now."
    ]


def test_the_shipped_flow_apologises_before_transferring_on_a_failed_lookup():
    """The lookup_failed route to a person carries its own apology (every brain says it)."""
    (route,) = FLOW.transitions("looking_up", "lookup_failed")
    assert route.target == "escalating"
    assert route.say is not None
    assert route.say.startswith("I'm sorry, our order system is not answering")


async def test_the_narrating_state_listens_for_yes_and_no():
    """"Anything else?" — no ends the call (when sure), yes asks what else; both from `listen:`."""
    dialogue = _dialogue()
    await _steps(dialogue.on_state(NARRATING))
    assert dialogue.listening() == "state_narrating"
    assert await _say(dialogue, "yes") == [
        "What else can I help you with? You can tell me another order number."
    ]
    assert _tools(await _say(dialogue, "no", confidence=0.95)) == [("end_call", {})]
    await _steps(dialogue.on_state(NARRATING))
    assert await _say(dialogue, "no", confidence=0.6) == ["Sorry, was that a yes or a no?"]
    steps = await _say(dialogue, "no", confidence=0.6)
    assert steps[0] == "Thank you for calling Duka Express. Goodbye."
    assert _tools(steps) == [("end_call", {})]
