"""Shared helpers of the web tests: a small generated corpus (no tests here)."""

from __future__ import annotations

import random
from pathlib import Path

from kimi_env.web.corpus import Corpus
from kimi_env.web.document import Document

HTML_PAGES = Path(__file__).parent / "data" / "html_pages"
WIKI = "https://kimiwiki.test/wiki/"

TOPICS = {
    "Paris": "Paris is the capital of France. The Eiffel Tower stands on the Champ de Mars beside the Seine river.",
    "Eiffel_Tower": "The Eiffel Tower is a wrought iron lattice tower in Paris, 330 metres tall, completed in 1889.",
    "Mount_Kilimanjaro": "Mount Kilimanjaro is a dormant volcano in Tanzania and the highest mountain in Africa.",
    "Photosynthesis": "Photosynthesis converts light energy into chemical energy stored in glucose inside chloroplasts.",
    "Ada_Lovelace": "Ada Lovelace wrote the first published algorithm for Babbage's Analytical Engine in 1843.",
    "Great_Barrier_Reef": "The Great Barrier Reef off Queensland is the largest coral reef system on Earth.",
}

_WORDS = (
    "river valley ancient market harbor garden bridge station museum tower village forest winter summer "
    "festival engine railway copper silver island desert canal temple castle meadow orchard library"
).split()


def topic_html(name: str, text: str) -> str:
    """A wiki-like page with an infobox, sections, a list and links to the other topics."""
    title = name.replace("_", " ")
    others = [t for t in TOPICS if t != name][:3]
    links = " ".join(f'<a href="/wiki/{o}">{o.replace("_", " ")}</a>' for o in others)
    filler = " ".join(f"<p>Section {i} about {title.lower()} history and the {_WORDS[i % len(_WORDS)]}.</p>" for i in range(3))
    return (
        f"<html><head><title>{title} - KimiWiki</title><script>var s='SCRIPT-NOISE';</script></head><body>"
        f"<nav><a href='/wiki/Main_Page'>Main page</a></nav><h1>{title}</h1>"
        f"<table class='infobox'><tr><th>Name</th><td>{title}</td></tr><tr><th>Topic id</th><td>{name}</td></tr></table>"
        f"<p>{text}</p><h2>See also</h2><ul><li>{links}</li></ul>{filler}</body></html>"
    )


def make_documents(n_filler: int = 40, seed: int = 0) -> list[Document]:
    """The topic pages (HTML) followed by seeded random filler pages (text)."""
    rng = random.Random(seed)
    docs = [Document(WIKI + name, name.replace("_", " "), html=topic_html(name, text)) for name, text in TOPICS.items()]
    for i in range(n_filler):
        words = " ".join(rng.choice(_WORDS) for _ in range(60))
        docs.append(Document(f"{WIKI}Filler_{i}", f"Filler {i}", text=f"{words}.\n\nMore {words[:80]}."))
    return docs


def build_corpus(tmp: Path, n_filler: int = 40) -> Corpus:
    """Build the fixture corpus into ``tmp / 'corpus'``."""
    return Corpus.build(make_documents(n_filler), tmp / "corpus", name="fixture")
