"""The ``memory`` tool: notes the agent keeps for itself, which context management never cuts.

An environment built with ``context_budget`` replaces older tool outputs by short stubs once the conversation grows
past the budget (see :class:`~kimi_env.ToolEnv`). What the agent wants to keep (a figure it found, a plan) it writes
with ``memory(note=...)``: the tool's reply repeats the note and is pinned, so it stays in the context verbatim.
``memory()`` without a note lists every note of the episode. Notes are per episode.
"""

from __future__ import annotations

from .base import Tool, ToolResult


class MemoryTool(Tool):
    """Keep a note that stays in your context when older tool outputs are shortened."""

    name = "memory"

    def __init__(self, *, max_notes: int = 64, max_note_chars: int = 500) -> None:
        super().__init__(timeout=5.0, max_output_chars=max(100, max_notes * (max_note_chars + 8)))
        self.max_notes = int(max_notes)
        self.max_note_chars = int(max_note_chars)
        self.notes: list[str] = []

    def reset(self) -> None:
        self.notes = []

    async def run(self, note: str = "") -> ToolResult:
        """Save a note (a fact you found, your plan) that stays in context; with no note, list your notes.

        Args:
            note: The text to keep, at most 500 characters. Leave it out to list the notes saved so far.
        """
        note = " ".join(str(note).split())
        if not note:
            if not self.notes:
                return ToolResult.success("No notes yet. Save one with memory(note=...).", pin=True)
            return ToolResult.success("Your notes:\n" + "\n".join(f"{i}. {n}" for i, n in enumerate(self.notes, 1)),
                                      pin=True)
        if len(note) > self.max_note_chars:
            return ToolResult.failure(f"a note may have at most {self.max_note_chars} characters, got {len(note)}; "
                                      "keep only what you need (names, figures, URLs).")
        if len(self.notes) >= self.max_notes:
            return ToolResult.failure(f"this episode already has {self.max_notes} notes, the most it keeps; "
                                      "list them with memory() and answer.")
        self.notes.append(note)
        return ToolResult.success(f"Note {len(self.notes)} saved: {note}", pin=True)
