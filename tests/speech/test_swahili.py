"""Swahili words for the English-only offline recogniser: phones by spelling, added to the decoder's dictionary."""

from orchestrator.speech.asr import GrammarDecoder
from orchestrator.speech.grammar import GrammarSpec, parse_order_number
from orchestrator.speech.swahili import swahili_phones, swahili_pronunciations
from orchestrator.speech.voices import caller_voice


def test_swahili_phones_follow_the_spelling():
    """Digraphs first (ng', ny, ch, dh), then one phone per letter; vowels are the five Swahili ones."""
    assert swahili_phones("kwaheri") == "K W AA HH EH R IY"
    assert swahili_phones("tafadhali") == "T AA F AA DH AA L IY"
    assert swahili_phones("ng'ombe") == "NG OW M B EH"
    assert swahili_phones("nyumbani") == "N Y UW M B AA N IY"
    assert swahili_pronunciations(["ni p k"]) == {"ni": "N IY"}  # letters keep the dictionary's names


def test_grammar_of_swahili_words_builds_and_hears_an_english_voice_ask_for_swahili():
    """Words the English dictionary lacks are added from their phones; "Kiswahili tafadhali" is heard."""
    phrases = ("kiswahili tafadhali", "naomba kiswahili")
    spec = GrammarSpec(intents={"swahili": phrases}, pronunciations=swahili_pronunciations(phrases))
    decoder = GrammarDecoder({"intents": spec})
    heard = decoder.recognize(caller_voice("slt")("Kiswahili tafadhali.", 16000), "intents")
    assert heard.text == "kiswahili tafadhali"


def test_order_numbers_read_with_swahili_digits():
    """"mbili sifuri tisa tatu moja" is 20931, whichever language the grammar was."""
    assert parse_order_number("oda yangu ni p k mbili sifuri tisa tatu moja", ["PK#####"]) == "PK20931"
