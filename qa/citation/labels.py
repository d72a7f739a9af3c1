"""Step 7e, source labels in broad answers: the prompt shows each source with its title and author
("«Macron's European Security Order» (by Rym Momtaz)"), and the model sometimes copies a label into
the answer, or makes one up.

The one decision: a label that names a source stays where it says who holds a view (a comparison's
"Momtaz: ..."), and goes where it stands for content: a heading no source has before a sentence, or
a source's own title listed as an item. Answers built from the snippets themselves name their source
with ``source_label``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from qa.citation.claims import Claim
from qa.citation.words import content_words
from qa.prompting.snippets import Snippet

# "Macron's Russia Policy: Macron's overtures in 2019...": a heading the model put before a sentence
_LABEL = re.compile(r"^\s*([^:.!?\[\]]{3,60}):\s+(?=\S)")


def unlabelled(claim: Claim, labels: set[str], notes: list[str]) -> Claim:
    """The claim without a heading the model put before it ("Macron's Russia Policy: ..."), unless the
    heading names a source (its title or author: "Momtaz: ...", as a comparison says who holds which
    view). A made-up heading is not in any passage, and it reads as a source the answer does not have.

    >>> unlabelled(Claim("Russia Policy: Talks ended.", (1,)), {"momtaz"}, []).text
    'Talks ended.'
    >>> [unlabelled(Claim(t, (1,)), {"momtaz"}, []).text for t in ("Momtaz: Talks ended.", "He said: no.")]
    ['Momtaz: Talks ended.', 'He said: no.']
    """
    found = _LABEL.match(claim.text)
    heading = found.group(1).split() if found else []
    if (not heading or len(heading) > 6 or any(w[0].islower() for w in heading if len(w) > 3)  # "Macron said:"
            or content_words(found.group(1)) <= labels):
        return claim
    notes.append(f"dropped a heading no source has: {found.group(1)}")
    return Claim(claim.text[found.end():], claim.markers)


# a list of documents or titles ("Name articles the analyst wrote"): its items may be sources' titles
ASKS_FOR_TITLES = re.compile(r"\b(?:articles?|documents?|titles?|pieces?|papers?|reports?|sources?|files?|publications?"
                     r"|books?|essays?)\b", re.I)


def a_source_title(text: str, snippets: Sequence[Snippet]) -> bool:
    """True when a list item is a source's whole title, or the part before its colon: the label the
    prompt shows with the source ("- Macron's European Security Order [2]" listed as a place Macron
    spoke), not an item the passage gives.

    >>> from types import SimpleNamespace as NS
    >>> a_source_title("Harbour Days", [NS(passage=NS(title="Harbour Days: A Year"))])
    True
    """
    said = _words(text)
    return bool(said) and any(said in (_words(s.passage.title), _words(s.passage.title.partition(": ")[0]))
                              for s in snippets if s.passage.title)


def _words(text: str) -> tuple[str, ...]:
    return tuple(re.findall(r"\w+", text.lower().replace("’", "'")))


def names_a_source(text: str, by_n: dict[int, Snippet]) -> bool:
    """True when a sentence opens with a source's title or author as its label ("Momtaz: ...",
    "Macron's European Security Order: ..."): a comparison's turn to the next source, shown as a new
    paragraph."""
    found = _LABEL.match(text)
    if not found:
        return False
    names = set()
    for s in by_n.values():
        author = (s.passage.author or "").split(",")[0].strip()
        names |= {s.passage.title, author, author.split()[-1] if author else ""}
    return found.group(1).strip() in names - {""}


def source_label(snippet: Snippet) -> str:
    """Who wrote a snippet's document and when, as far as the index knows: "Faure (2020)", else its
    title: "«Macron's Dialogue With Russia» (2020)"."""
    passage = snippet.passage
    name = passage.author.split(",")[0].split()[-1] if passage.author else f"«{passage.title or passage.doc}»"
    year = (passage.date or "")[:4]
    return f"{name} ({year})" if year.isdigit() else name
