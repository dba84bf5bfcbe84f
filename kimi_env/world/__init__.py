"""A generated offline world (fictional encyclopedia) and verified task synthesis.

Design note
-----------
* **World** (:mod:`.generate`, :mod:`.model`, :mod:`.render`): a seeded ``random.Random`` builds fictional
  entities (countries, cities, people, companies, universities, societies, books, films, albums, events) with
  typed attributes and relations, in a fixed order (no set or hash iteration), so the same seed gives the same
  bytes under any ``PYTHONHASHSEED``. Names come from syllable tables (:mod:`.names`) and are unique except for
  deliberate distractors: exact namesakes (qualified slugs plus a disambiguation page at the bare name),
  shared surnames (surname pages) and near-duplicate company names. The **fact graph** (``World.facts``) is
  derived from the entities and records, for each fact, the page that states it and whether it is *deep*
  (stated only in a late section, after filler prose, never in the infobox or the lead). Pages are rendered
  lazily (``World.documents()``), one ``random.Random`` per page, so memory stays linear and a page renders the
  same alone or in a stream. Some pages carry numeric tables; some facts are contradicted by an archive page on
  another site (the wiki article is authoritative).
* **Tasks** (:mod:`.synth`): templates walk the fact graph and emit :class:`~kimi_env.tasks.Task` objects with a
  machine-readable *plan* that names only what the question names; the answer is computed from the entities.
* **Funnel** (:mod:`.funnel`): the plan is re-executed against the fact graph by an independent interpreter
  (:mod:`.plan`) - it must resolve every name to exactly one entity, meet no source conflict and reproduce the
  answer; then near-duplicates, trivially guessable tasks, entity-split leakage and (optionally) unsolvable
  tasks are dropped, each stage reporting its counts.
"""

from .generate import generate_world
from .model import DEEP, SCHEMA, Conflict, Entity, Fact, Table, World

__all__ = ["DEEP", "SCHEMA", "Conflict", "Entity", "Fact", "Table", "World", "generate_world"]
