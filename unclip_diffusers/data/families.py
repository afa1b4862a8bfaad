"""Concept families: a base emoji with all its skin-tone, gender, hair and direction variants.

A family is the unit that is held out together (so no trained sibling leaks into a held-out split) and the unit
that balanced sampling weighs equally. "person climbing" (1f9d7), "man climbing" (1f9d7-200d-2642) and "woman
climbing: light skin tone" (1f9d7-1f3fb-200d-2640) share the family 1f9d7; "man cook" (1f468-200d-1f373) and
"person cook" (1f9d1-200d-1f373) share 1f9d1-200d-1f373; every kiss, couple with heart, family and pair holding
hands, whoever is in it, joins one family per kind.
"""

from __future__ import annotations

from .concepts import SKIN_TONES, concept_key, key_to_codepoints

ZWJ = 0x200D
FEMALE_SIGN, MALE_SIGN = 0x2640, 0x2642
RIGHTWARDS_ARROW = 0x27A1  # "facing right" sequences (Emoji 15.1)
HAIR_COMPONENTS = {0x1F9B0, 0x1F9B1, 0x1F9B2, 0x1F9B3}  # red, curly, bald, white hair
HEART, KISS_MARK, HANDSHAKE = 0x2764, 0x1F48B, 0x1F91D
PERSON, CHILD, OLDER_PERSON = 0x1F9D1, 0x1F9D2, 0x1F9D3

# Gendered code points -> their gender-neutral counterpart (Unicode's man/woman/person triples).
NEUTRAL_FORM = {
    0x1F468: PERSON, 0x1F469: PERSON,  # man, woman
    0x1F466: CHILD, 0x1F467: CHILD,  # boy, girl
    0x1F474: OLDER_PERSON, 0x1F475: OLDER_PERSON,  # old man, old woman
    0x1F934: 0x1FAC5, 0x1F478: 0x1FAC5,  # prince, princess -> person with crown
    0x1F930: 0x1FAC4, 0x1FAC3: 0x1FAC4,  # pregnant woman, pregnant man -> pregnant person
    0x1F385: 0x1F936, # Santa Claus -> Mrs. Claus (the mx claus sequence below joins them too)
}  # fmt: skip
# Single code points that already show a pair or a group of people.
COUPLE_WITH_HEART, KISS, FAMILY, HOLDING_HANDS = "1f491", "1f48f", "1f46a", "1f9d1-200d-1f91d-200d-1f9d1"
GROUP_EMOJI = {0x1F491: COUPLE_WITH_HEART, 0x1F48F: KISS, 0x1F46A: FAMILY,
               0x1F46B: HOLDING_HANDS, 0x1F46C: HOLDING_HANDS, 0x1F46D: HOLDING_HANDS}  # fmt: skip
# Sequences that are variants of another emoji: mx claus joins Santa and Mrs. Claus, a mixed-tone handshake is a
# handshake, the Emoji 16 pairs with bunny ears or wrestling join the older single code points.
SAME_FAMILY_AS = {"1f9d1-200d-1f384": "1f936", "1faf1-200d-1faf2": "1f91d",
                  "1f9d1-200d-1f430-200d-1f9d1": "1f46f", "1f9d1-200d-1faef-200d-1f9d1": "1f93c"}  # fmt: skip
PEOPLE = {PERSON, CHILD, OLDER_PERSON}


def _components(codepoints: list[int]) -> list[list[int]]:
    """Split a sequence at its zero-width joiners."""
    parts: list[list[int]] = [[]]
    for cp in codepoints:
        if cp == ZWJ:
            parts.append([])
        else:
            parts[-1].append(cp)
    return [p for p in parts if p]


def family_of(key: str) -> str:
    """The family key of a concept: tones, gender signs, hair and direction stripped, people made neutral."""
    codepoints = [cp for cp in key_to_codepoints(key) if cp not in SKIN_TONES]
    if not codepoints:
        return key
    if len(codepoints) == 1 and codepoints[0] in GROUP_EMOJI:
        return GROUP_EMOJI[codepoints[0]]
    parts = []
    for part in _components(codepoints):
        if part in ([FEMALE_SIGN], [MALE_SIGN], [RIGHTWARDS_ARROW]) or (len(part) == 1 and part[0] in HAIR_COMPONENTS):
            continue
        parts.append([NEUTRAL_FORM.get(cp, cp) for cp in part])
    if not parts:
        return concept_key(codepoints)
    heads = [p[0] for p in parts]
    people = sum(h in PEOPLE for h in heads)
    if people >= 2:  # a sequence of several people: which kind of group it is decides the family
        if KISS_MARK in heads:
            return KISS
        if HEART in heads:
            return COUPLE_WITH_HEART
        if HANDSHAKE in heads:
            return HOLDING_HANDS
        if all(h in PEOPLE for h in heads):
            return FAMILY
    family = concept_key([cp for i, part in enumerate(parts) for cp in ([ZWJ] if i else []) + part])
    return SAME_FAMILY_AS.get(family, family)


__all__ = ["family_of"]
