"""The sentence forms of statetrack's one-entry-per-fact memory, read back into the fact each states.

The oracle (`atommem.tasks.statetrack_oracle.entries`) writes one entry per fact about the present:
    "Mary is in the kitchen."        (person, Mary)
    "Mary carries the apple."        (carries, apple)
    "The apple is in the kitchen."   (lying, apple)
`entry_key` gives that key for any text in these forms: statetrack's task (atommem.tasks.statetrack) hands
it to the write audit, which judges a policy's writes by it.
"""

from __future__ import annotations

import re

_ENTRY_FORMS = (
    ("person", re.compile(r"(\w+) is in the \w+\.?")),
    ("carries", re.compile(r"\w+ carries the (\w+)\.?")),
    ("lying", re.compile(r"The (\w+) is in the \w+\.?")),
)


def entry_key(text: str) -> tuple[str, str] | None:
    """The (kind, name) of the fact an entry in the oracle's forms states; None for any other text."""
    for kind, form in _ENTRY_FORMS:
        m = form.fullmatch(text.strip())
        if m:
            return kind, m.group(1)
    return None
