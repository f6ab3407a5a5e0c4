"""Two recognisers agree when they heard the same consonants in the same places, whatever the spelling."""

from orchestrator.speech.sounds import sound_alike, sound_skeleton

_DICTIONARY = {
    "yes": "Y EH S",
    "us": "AH S",
    "this": "DH IH S",
    "no": "N OW",
    "know": "N OW",
    "now": "N AW",
    "hi": "HH AY",
    "oh": "OW",
    "that's": "DH AE T S",
    "right": "R AY T",
    "write": "R AY T",
}


def test_a_skeleton_keeps_consonants_and_where_vowels_fall():
    assert sound_skeleton("Y EH S".split()) == ("V", "S")
    assert sound_skeleton("DH IH S".split()) == ("DH", "V", "S")


def test_an_accent_that_moves_the_vowel_and_drops_the_glide_still_sounds_alike():
    """awb's Scottish "yes" comes back from the open decoder as "us"."""
    assert sound_alike(["yes"], ["us"], _DICTIONARY.get)
    assert sound_alike(["no"], ["now"], _DICTIONARY.get)
    assert sound_alike(["that's", "right"], ["that's", "write"], _DICTIONARY.get)


def test_one_consonant_apart_is_another_word():
    assert not sound_alike(["yes"], ["this"], _DICTIONARY.get)
    assert not sound_alike(["yes"], ["no"], _DICTIONARY.get)


def test_vowels_alone_and_unknown_words_never_agree():
    """ "hi" and "oh" are one vowel each once the "h" goes: nothing to agree on."""
    assert not sound_alike(["hi"], ["oh"], _DICTIONARY.get)
    assert not sound_alike(["yes"], ["yiss"], _DICTIONARY.get)
    assert not sound_alike([], ["us"], _DICTIONARY.get)
