"""Intents in the caller's own words: the keywords come from the flow's phrases, one intent's words only."""

from orchestrator.speech.keywords import intent_keywords, match_keywords, stem

INTENTS = {
    "status": ("where is my order", "when will it arrive", "is the rider coming", "my parcel"),
    "human": ("speak to a person", "customer care", "a real person"),
    "by_phone": ("check my number", "use my phone number"),
    "goodbye": ("bye", "no thanks", "that is all"),
    "yes": ("yes", "that's right"),
    "no": ("no", "that's wrong"),
}


def test_stem_meets_the_forms_callers_use():
    """"arrived" meets "arrive", "orders" meets "order"; short words are left alone."""
    assert stem("arrived") == stem("arrive")
    assert stem("orders") == stem("order")
    assert stem("parcels") == stem("parcel")
    assert stem("care") == "care"


def test_intent_keywords_are_the_words_only_one_intent_uses():
    """Stop words and words two intents share are no evidence; yes and no are left out when asked."""
    keywords = intent_keywords(INTENTS, exclude=("yes", "no"))
    assert {"wher", "order", "arriv", "rider", "parcel"} <= keywords["status"]
    assert {"speak", "person", "customer", "care", "real"} <= keywords["human"]
    assert "my" not in keywords["status"]
    assert "yes" not in keywords
    assert "no" not in keywords
    assert "number" in keywords["by_phone"]


def test_match_keywords_reads_a_natural_question_as_its_intent():
    """Words no phrase holds still say what the caller wants."""
    keywords = intent_keywords(INTENTS, exclude=("yes", "no"))
    assert match_keywords("i bought a fridge and it hasn't arrived yet", keywords) == "status"
    assert match_keywords("could i speak with someone from care", keywords) == "human"
    assert match_keywords("lovely weather in mombasa today", keywords) is None


def test_match_keywords_refuses_a_tie():
    """As much evidence for two intents is no answer: the policy asks again instead."""
    keywords = intent_keywords(INTENTS, exclude=("yes", "no"))
    assert match_keywords("a person about my parcel", keywords) is None
