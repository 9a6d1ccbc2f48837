"""What redaction's prefilter found in each word of one rendering, so a word is looked through once.

Why: the prefilter looks for about 200 literals (and texts rules begin with) in every value of a
trace, a scan of the value each: most of a big plan's redaction, though a trace says the same
words again and again. No literal and no such text holds white space (but those `spaced` ones,
looked for in the whole text as before), so each occurs in a text exactly where it occurs in one
of the text's white-space-separated words (`str.split()`); literals are looked for lower-cased,
and lower-casing a text lower-cases each word on its own (white space stays white space). So what
the prefilter finds in a text is what it found in its words, each word looked through the first
time it is seen — all the new words of a text together, in one pass. Pure; one `WordMemo` per
rendering (`redact.redacting`), so nothing is shared between renderings or threads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

Found = tuple[set[str], set[str]]  # the literals (lower-cased) and the texts rules begin with, in a text
_NOTHING: tuple[frozenset[str], frozenset[str]] = (frozenset(), frozenset())
MOST_WORDS = 1 << 15  # words remembered at once (about 100 bytes each); then forgotten and learnt again


class WordMemo:
    """What `learn` (the prefilter over a text) finds in each word seen in one rendering."""

    def __init__(self, learn: Callable[[str], Found], spaced: Iterable[str]) -> None:
        self._learn = learn
        self._spaced = tuple(spaced)  # literals that hold white space: looked for in the whole text
        self._known: dict[str, tuple[frozenset[str], frozenset[str]]] = {}
        self._hot: dict[str, tuple[frozenset[str], frozenset[str]]] = {}  # the words something was found in

    def found(self, text: str) -> Found:
        """What `learn(text)` finds, from the words of `text`."""
        words = set(text.split())
        new = words.difference(self._known)
        if new and len(self._known) + len(new) > MOST_WORDS:  # forget all, and learn this text's words again
            self._known.clear()
            self._hot.clear()
            new = words
        if new:
            self._see(new)
        present: set[str] = set()
        starts: set[str] = set()
        if self._hot:
            for word in words.intersection(self._hot):
                hit = self._hot[word]
                present |= hit[0]
                starts |= hit[1]
        if self._spaced:
            low = text.lower()
            present.update(lit for lit in self._spaced if lit in low)
        return present, starts

    def _see(self, new: set[str]) -> None:
        words = list(new)
        joined = "\n".join(words)  # no literal holds a line break: what is found is found in one word
        present, starts = self._learn(joined)
        self._known.update(dict.fromkeys(words, _NOTHING))
        if not present and not starts:
            return
        hits: dict[str, tuple[set[str], set[str]]] = {}
        lowered = joined.lower().split("\n") if present else []  # each word lower-cased, in order
        for lit in present:
            for i in [i for i, low in enumerate(lowered) if lit in low]:
                hits.setdefault(words[i], (set(), set()))[0].add(lit)
        for start in starts:
            for word in [word for word in words if start in word]:
                hits.setdefault(word, (set(), set()))[1].add(start)
        for word, (lits, begins) in hits.items():
            self._known[word] = self._hot[word] = (frozenset(lits), frozenset(begins))
