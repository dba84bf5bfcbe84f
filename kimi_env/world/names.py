"""Pronounceable fictional names from syllable and morpheme tables.

Every function takes a :class:`random.Random` instance (never the global one), so names depend only on the seed.
:class:`NameBook` hands out names that are unique across the whole world (case-insensitive) and can make a
deliberate near-duplicate of an existing name (a distractor).

>>> import random
>>> book = NameBook()
>>> name = book.unique(lambda r: person_name(r), random.Random(1))
>>> name == name.strip() and " " in name
True
"""

from __future__ import annotations

import random
from collections.abc import Callable

ONSETS = (
    "b",
    "br",
    "c",
    "d",
    "dr",
    "f",
    "g",
    "gr",
    "h",
    "k",
    "kr",
    "l",
    "m",
    "n",
    "p",
    "qu",
    "r",
    "s",
    "sh",
    "st",
    "t",
    "th",
    "tr",
    "v",
    "vr",
    "z",
    "",
    "",
    "y",
    "l",
    "m",
    "v",
)
VOWELS = ("a", "e", "i", "o", "u", "ae", "ai", "ei", "ou", "y", "a", "e", "o")
MID_CODAS = ("", "", "", "n", "r", "l", "s")
END_CODAS = ("", "n", "r", "l", "s", "th", "nd", "rn", "lt", "x", "sh", "m", "ne", "ra", "ve")
SURNAME_ENDS = (
    "dale",
    "mere",
    "holt",
    "vane",
    "worth",
    "ley",
    "ric",
    "ander",
    "ova",
    "ine",
    "ell",
    "ast",
    "orn",
    "aro",
)
CITY_ENDS = ("a", "ia", "holm", "ford", "haven", "stead", "ora", "enne", "ssa", "port", "wick", "ara", "ent")
CITY_PREFIXES = ("Port ", "New ", "Upper ", "Lake ", "Fort ", "North ", "Saint ")
COUNTRY_ENDS = ("ia", "ara", "land", "mark", "ovia", "eth", "ora", "esh", "ania", "uvia")
COMPANY_WORDS = {
    "publishing": ("Press", "Publishing", "Books", "House"),
    "film": ("Pictures", "Studios", "Films", "Screenworks"),
    "music": ("Records", "Sound", "Recordings", "Music"),
    "technology": ("Systems", "Labs", "Dynamics", "Computing"),
    "manufacturing": ("Works", "Industries", "Foundry", "Manufacturing"),
    "logistics": ("Logistics", "Freight", "Shipping", "Transport"),
    "energy": ("Energy", "Power", "Utilities", "Grid"),
    "finance": ("Holdings", "Capital", "Bank", "Trust"),
}
SOCIETY_WORDS = ("Society", "Guild", "Circle", "Academy", "League", "Fellowship")
SOCIETY_TOPICS = ("Chamber", "Cartographic", "Astronomical", "Poetry", "Chess", "Botanical", "Rowing", "Glassmakers")
ADJECTIVES = (
    "Glass",
    "Silent",
    "Hollow",
    "Amber",
    "Iron",
    "Crimson",
    "Pale",
    "Winter",
    "Hidden",
    "Distant",
    "Salt",
    "Copper",
    "Burning",
    "Quiet",
    "Sunken",
    "Northern",
    "Paper",
    "Velvet",
    "Broken",
    "Endless",
)
NOUNS = (
    "Orchard",
    "Lantern",
    "Harbor",
    "Tide",
    "Archive",
    "Garden",
    "Bridge",
    "Crown",
    "Mirror",
    "River",
    "Tower",
    "Season",
    "Voyage",
    "Compass",
    "Meadow",
    "Engine",
    "Letter",
    "Chorus",
    "Atlas",
    "Signal",
)
EVENT_WORDS = ("Festival", "Open", "Prize", "Congress", "Regatta", "Marathon", "Biennale", "Games")
ANIMALS = ("heron", "lynx", "otter", "stag", "falcon", "hare", "ibex", "marten", "crane", "salamander", "bison", "owl")
COLORS = ("silver", "grey", "red", "black", "golden", "white", "blue", "spotted", "striped", "copper")

_SWAPS = (("y", "i"), ("i", "y"), ("c", "k"), ("k", "c"), ("v", "w"), ("s", "z"), ("ae", "e"), ("ou", "o"), ("o", "ou"))


def word(rng: random.Random, syllables: tuple[int, int] = (2, 3), ends: tuple[str, ...] = ()) -> str:
    """A capitalized pronounceable word of random syllables, optionally with a morpheme ending."""
    n = rng.randint(*syllables)
    parts = []
    for i in range(n):
        parts.append(rng.choice(ONSETS) if i == 0 or rng.random() < 0.8 else "")
        parts.append(rng.choice(VOWELS))
        parts.append(rng.choice(END_CODAS if i == n - 1 else MID_CODAS))
    w = "".join(parts)
    if ends:
        w = w.rstrip("aeiouy") + rng.choice(ends)
    w = w.replace("yy", "y").replace("uu", "u").replace("ii", "i")
    return w[:1].upper() + w[1:]


def given_name(rng: random.Random) -> str:
    return word(rng, (2, 3))


def surname(rng: random.Random) -> str:
    return word(rng, (1, 2), SURNAME_ENDS) if rng.random() < 0.7 else word(rng, (2, 3))


def person_name(rng: random.Random, family: str | None = None) -> str:
    return f"{given_name(rng)} {family or surname(rng)}"


def city_name(rng: random.Random) -> str:
    base = word(rng, (1, 2), CITY_ENDS) if rng.random() < 0.7 else word(rng, (2, 3))
    return (rng.choice(CITY_PREFIXES) + base) if rng.random() < 0.2 else base


def country_name(rng: random.Random) -> str:
    return word(rng, (1, 2), COUNTRY_ENDS)


def company_name(rng: random.Random, industry: str) -> str:
    return f"{word(rng, (2, 3))} {rng.choice(COMPANY_WORDS[industry])}"


def society_name(rng: random.Random, place: str) -> str:
    return f"{place} {rng.choice(SOCIETY_TOPICS)} {rng.choice(SOCIETY_WORDS)}"


def title(rng: random.Random, kind: str) -> str:
    """A work title that always contains a fictional word, so no model can know it."""
    w = word(rng, (2, 3))
    pattern = rng.randrange(4)
    if kind == "album":
        return (
            f"{w} in {rng.choice(COLORS).title()}",
            f"{rng.choice(ADJECTIVES)} {w}",
            f"Songs for {w}",
            f"The {w} Sessions",
        )[pattern]
    return (
        f"The {rng.choice(ADJECTIVES)} {rng.choice(NOUNS)} of {w}",
        f"{w} {_plural(rng.choice(NOUNS))}",
        f"A {rng.choice(NOUNS)} for {w}",
        f"The {w} {rng.choice(NOUNS)}",
    )[pattern]


def _plural(noun: str) -> str:
    return noun + ("es" if noun.endswith("s") else "s")


def event_name(rng: random.Random, place: str) -> str:
    return (
        f"{place} {rng.choice(ADJECTIVES)} {rng.choice(EVENT_WORDS)}"
        if rng.random() < 0.5
        else f"{word(rng, (2, 2))} {rng.choice(EVENT_WORDS)}"
    )


def near_duplicate(name: str, rng: random.Random) -> str:
    """A confusable variant of ``name``: a respelled first word and/or an extra word ("Group")."""
    first, _, rest = name.partition(" ")
    low = first.lower()
    options = [(a, b) for a, b in _SWAPS if a in low[1:]]
    if options:
        a, b = rng.choice(options)
        i = low.index(a, 1)
        first = first[:i] + b + first[i + len(a) :]
    extra = rng.choice(("Group", "International", "Holdings", "Company"))
    return f"{first} {rest} {extra}".replace("  ", " ").strip() if rest else f"{first} {extra}"


class NameBook:
    """Hands out names unique across the world (case-insensitive)."""

    def __init__(self) -> None:
        self._used: set[str] = set()

    def __contains__(self, name: str) -> bool:
        return name.lower() in self._used

    def take(self, name: str) -> bool:
        """Reserve ``name``; False when it is taken."""
        key = name.lower()
        if key in self._used:
            return False
        self._used.add(key)
        return True

    def unique(self, make: Callable[[random.Random], str], rng: random.Random, tries: int = 200) -> str:
        """Call ``make(rng)`` until it gives an unused name, then reserve it."""
        for _ in range(tries):
            name = make(rng)
            if self.take(name):
                return name
        n = 2
        base = make(rng)
        while not self.take(f"{base} {roman(n)}"):
            n += 1
        return f"{base} {roman(n)}"


def roman(n: int) -> str:
    """A Roman numeral (suffix of a name that ran out of fresh variants).

    >>> roman(14)
    'XIV'
    """
    out = []
    for value, sym in (
        (1000, "M"),
        (900, "CM"),
        (500, "D"),
        (400, "CD"),
        (100, "C"),
        (90, "XC"),
        (50, "L"),
        (40, "XL"),
        (10, "X"),
        (9, "IX"),
        (5, "V"),
        (4, "IV"),
        (1, "I"),
    ):
        while n >= value:
            out.append(sym)
            n -= value
    return "".join(out)
