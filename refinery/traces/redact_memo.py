"""What redaction's prefilter found in each word of one rendering, so a word is looked through once.

Why: the prefilter looks for about 200 literals (and texts rules begin with) in every value of a
trace, a scan of the value each: most of a big plan's redaction, though a trace says the same
words again and again. No literal and no such text holds white space (but those `spaced` ones,
see below), so each occurs in a text exactly where it occurs in one of the text's
white-space-separated words (`str.split()`); literals are looked for lower-cased, and lower-casing
a text lower-cases each word on its own (white space stays white space, and no character's lower
case depends on anything past white space). So what the prefilter finds in a text is what it found
in its words, each word looked through the first time it is seen — all the new words of a text
together, in one pass. Pure; two `WordMemo`s per rendering (`redact.redacting`: the values', and the
renderer's own text's, its digits written alike), so nothing is shared between renderings or threads.

A text costs its `split` and, where every word is known and none held anything (nearly every
value), two C-level look-ups of its word list (`issuperset`, `isdisjoint`: no set is built, each
word hashed once). A `spaced` literal (`private key`) is looked for in the lower-cased text only
where one of its words holds the literal's first white-space-free piece: wherever the literal
occurs in the lower-cased text that piece occurs too, inside one word (it holds no white space),
and that word's lower case holds it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

Found = tuple[set[str], set[str]]  # the literals (lower-cased) and the texts rules begin with, in a text
# what a word held: its literals, the texts rules begin with, and whether its lower case holds a
# spaced literal's first piece
_Held = tuple[frozenset[str], frozenset[str], bool]
MOST_WORDS = 1 << 15  # words remembered at once (about 100 bytes each); then forgotten and learnt again


class WordMemo:
    """What `learn` (the prefilter over a text) finds in each word seen in one rendering."""

    def __init__(self, learn: Callable[[str], Found], spaced: Iterable[str]) -> None:
        self._learn = learn
        self._spaced = tuple(spaced)  # literals that hold white space: looked for in the whole text
        pieces = [lit.split() for lit in self._spaced]
        self._pieces = tuple(sorted({p[0] for p in pieces if p}))  # each one's first white-space-free piece
        self._always_spaced = any(not p for p in pieces)  # a literal of white space only: looked for always
        self._known: set[str] = set()
        self._hot: dict[str, _Held] = {}  # the words something was found in

    def found(self, text: str) -> Found:
        """What `learn(text)` finds, from the words of `text`."""
        words = text.split()
        if not self._known.issuperset(words):
            new = set(words).difference(self._known)
            if len(self._known) + len(new) > MOST_WORDS:  # forget all, and learn this text's words again
                self._known.clear()
                self._hot.clear()
                new = set(words)
            self._see(new)
        present: set[str] = set()
        starts: set[str] = set()
        spaced = self._always_spaced
        hot = self._hot
        if hot and not hot.keys().isdisjoint(words):
            for word in hot.keys() & words:
                lits, begins, piece = hot[word]
                present |= lits
                starts |= begins
                spaced = spaced or piece
        if spaced:
            low = text.lower()
            present.update(lit for lit in self._spaced if lit in low)
        return present, starts

    def _see(self, new: set[str]) -> None:
        words = list(new)
        joined = "\n".join(words)  # no literal holds a line break: what is found is found in one word
        present, starts = self._learn(joined)
        self._known.update(words)
        low = joined.lower() if present or self._pieces else ""
        pieces = [p for p in self._pieces if p in low]
        if not present and not starts and not pieces:
            return
        hits: dict[str, tuple[set[str], set[str], list[bool]]] = {}
        lowered = low.split("\n") if present or pieces else []  # each word lower-cased, in order
        for lit in present:
            for i in [i for i, w in enumerate(lowered) if lit in w]:
                hits.setdefault(words[i], (set(), set(), [False]))[0].add(lit)
        for start in starts:
            for word in [word for word in words if start in word]:
                hits.setdefault(word, (set(), set(), [False]))[1].add(start)
        for piece in pieces:
            for i in [i for i, w in enumerate(lowered) if piece in w]:
                hits.setdefault(words[i], (set(), set(), [False]))[2][0] = True
        for word, (lits, begins, flag) in hits.items():
            self._hot[word] = (frozenset(lits), frozenset(begins), flag[0])
