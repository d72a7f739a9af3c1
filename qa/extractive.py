"""Step 8c, extractive answers: which passage text answers an explanation or a description itself.

The one decision: an explanation or a description is answered by one snippet, the one holding the
sentence closest to the question, grown to the sentences that complete it (the one it points back
at, the causes of a consequence it gives, the sentences after it that keep to its subject) within
the answer's word limit, and never by a sentence longer than that limit. A description answers only
from a snippet that names what it describes, and reads such passages first (docs/DESIGN.md,
"Extractive answers").
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import replace

from embeddings.paragraphs import split_sentences
from qa.citation.words import content_words, question_topic, years
from qa.injection import looks_like_injection
from qa.prompting.snippets import Snippet, is_prose, points_back, sentence_scores
from qa.references import asked_years
from qa.retrieve import Hit, Retriever
from qa.shapes import described


def naming_first(question: str, hits: Sequence[Hit]) -> list[Hit]:
    """A description's passages with those that name what it describes first, in their order, ranks
    renumbered: the snippets' budget goes to them, since only they may answer (``best_snippet``). "What is
    GLOBSEC and why does it keep coming up?" ranked first the passages matching the rest of its words."""
    if not content_words(described(question)):
        return list(hits)
    names = naming_test(question)
    ordered = sorted(hits, key=lambda h: (not names(h.passage.text), h.rank))
    return [replace(h, rank=n) for n, h in enumerate(ordered, start=1)]


def names_described(question: str, hits: Sequence[Hit]) -> bool:
    """Whether a description question says what it describes and a passage among ``hits`` names all of
    it: then the passages are close by definition, however far the question's other words ("What is
    GLOBSEC?": one acronym, which the embedder places nowhere near its passage)."""
    return bool(content_words(described(question))) and any(naming_test(question)(h.passage.text) for h in hits)


def best_snippet(snippets: Sequence[Snippet], retriever: Retriever, question: str, *, words: int,
                 naming: bool = False) -> Snippet | None:
    """An explanation's or a description's extractive answer: the best-scoring snippet (the sentence
    closest to the question with the sentences around it that the prompt had room for, among them
    the one after it, where an explanation goes on), with the sentence before it when it opens by
    pointing back ("These two factors...", "She has..."); cut to the best sentence and the one after
    it when it runs over ``words``, carried on while the sentences after it keep to the subject and
    the words allow (``_carried_on``). One snippet, because a second is seldom evidence: on the 17
    explanations and descriptions of dev_broad and heldout_broad, this answer covered 0.76 of the
    points with 0.88 of its citations on evidence; all snippets within 110 words 0.77 with 0.47; cut
    whenever over 40 words instead of 110, 0.70 with 0.88 (docs/DESIGN.md, "Extractive answers").
    With ``naming`` (a description), only a snippet that names what was asked may answer: every word
    of it in one sentence when the wording says what (`qa.shapes.described`: "What is the Bratislava treaty that Faure
    mentions?" is not answered by a quote about treaties), else one word of the question's topic;
    None when none does, as the model's description is refused when no sentence of it cites a
    source naming it."""
    if naming:  # a description: only a snippet that names what was asked ("Who is Volodymyr Zelensky?")
        names = naming_test(question)
        snippets = [s for s in snippets if names(s.text)]
    asked = asked_years(question)  # one year ("what happened back in 1990"), not a span ("from 2019 to 2023")
    if len(asked) == 1 and any(asked <= years(s.text) for s in snippets):
        snippets = [s for s in snippets if asked <= years(s.text)]
    fitting = [s for s in snippets if any(len(s.text[a:b].split()) <= words and is_prose(s.text[a:b])
                                          for a, b in split_sentences(s.text))]
    if fitting:  # a sentence longer than an answer may be cannot be one, nor be carried on
        snippets = fitting
    if not snippets:
        return None
    best = max(snippets, key=lambda s: s.score)
    passage, document = best.passage, retriever.document_text(best.passage.doc)
    spans = [(passage.start + s, passage.start + e) for s, e in split_sentences(passage.text)]
    start, end = best.start, best.end
    if len(best.text.split()) > words:
        inside = [(s, e) for s, e in spans if start <= s and e <= end]
        query = retriever.query_vector(question)
        scores = {(s, e): score for score, s, e in sentence_scores(best.hit, retriever, query, question)}
        top = max(range(len(inside)), key=lambda i: scores.get(inside[i], -1.0)) if inside else None
        if top is not None:
            start, end = inside[top][0], inside[min(top + 1, len(inside) - 1)][1]
    if points_back(document[start:end]):  # the sentences it points back at
        start = _taken_back(document, spans, start, end, sentences=POINTED_AT, words=words, pointing=True)
    elif not naming and _CONSEQUENCE.match(document[start:end]):  # the causes before it
        start = _taken_back(document, spans, start, end, sentences=CAUSE_SENTENCES, words=words)
    end = _carried_on(document, spans, start, end, question, words)
    return replace(best, n=1, start=start, end=end, text=document[start:end])


# A sentence that gives a consequence of what comes before it ("As a result, EU member states still lack the
# means..."): an explanation's causes are the sentences before it. On the 49 explanations of the eight broad
# sets: accuracy 0.673 -> 0.694, point recall 0.609 -> 0.624 (one, hc06; one sentence before: 0.614).
_CONSEQUENCE = re.compile(r"^\W*(?:as a result|as a consequence|consequently|therefore|thus|hence|accordingly"
                          r"|for (?:this|that|these|those) reasons?|(?:this|that) is why)\b", re.I)
CAUSE_SENTENCES = 2  # at most this many sentences before it
POINTED_AT = 3  # a pointing-back sentence brings at most this many before it


def _taken_back(document: str, spans: Sequence[tuple[int, int]], start: int, end: int, *, sentences: int,
                words: float, pointing: bool = False) -> int:
    """The start of an answer ``document[start:end]`` taken back through the sentences before it in its
    passage (``spans``), at most ``sentences`` of them, while they are prose (not an injected order)
    and the whole stays within ``words`` words: the causes of a consequence, or, with ``pointing``, the
    sentence a pointing-back one needs, whatever its length, and the one before that while the
    sentence taken points back too ("That often manifests in... These verbal gymnastics... But they...")."""
    used, first = len(document[start:end].split()), start
    for s, e in [span for span in spans if span[1] <= start][::-1][:sentences]:
        sentence = document[s:e]
        too_long = used + len(sentence.split()) > words and not (pointing and start == first)
        if too_long or not is_prose(sentence) or looks_like_injection(sentence):
            break
        start, used = s, used + len(sentence.split())
        if pointing and not points_back(sentence):
            break
    return start


def naming_test(question: str) -> Callable[[str], bool]:
    """Whether a text names what a description ``question`` asks about: every word of it in one
    sentence when the wording says what (`qa.shapes.described`: "the Bratislava treaty"), or its last
    word capitalised, as a surname or a name's head is written alone ("Putin", "the Conference");
    else a word of the question's topic."""
    name = described(question)
    thing = content_words(name)
    if thing:
        last = name.split()[-1]  # "Putin" names "Vladimir Putin", "Vimont" "pierre vimont"; "conference" no conference
        head = re.compile(rf"\b{re.escape(last[:1].upper() + last[1:])}\b") if " " in name and last[:1].isalpha() else None
        return lambda text: any(thing <= content_words(text[a:b]) or (head is not None and head.search(text[a:b]))
                                for a, b in split_sentences(text))
    topic = question_topic(question)[2]
    return lambda text: bool(topic & content_words(text))


def _carried_on(document: str, spans: Sequence[tuple[int, int]], start: int, end: int, question: str,
                words: int) -> int:
    """The end of the answer ``document[start:end]`` carried on through the sentences after it in its
    passage (``spans``) while it stays within ``words`` words and each sentence goes on with its subject
    (shares a content word with the question or the answer so far): an explanation often goes on past
    the sentence after the best one ("...remained largely constant. He wants Europeans at the table...").
    Not past the passage: a second passage is a second citation, seldom evidence. On the 42
    explanations and descriptions of the five broad sets, 30 of them covered their points (0.714),
    31 carried on (0.738), point recall 0.659 -> 0.679, citation precision 0.857 both, 63 -> 70 words
    (docs/DESIGN.md, "Extractive answers")."""
    used = len(document[start:end].split())
    said = content_words(question) | content_words(document[start:end])
    for s, e in (span for span in spans if span[0] >= end):
        sentence = document[s:e]
        size, new = len(sentence.split()), content_words(sentence)
        if used + size > words or not is_prose(sentence) or looks_like_injection(sentence) or not new & said:
            break
        end, used, said = e, used + size, said | new
    return end


# A word that ends a list item's phrase after its kind word, and the prepositions it goes on through.
_ITEM_END = re.compile(r"[,;:—–(“\"]|\.(?=\s+[A-Z“\"]|\s*$)")
_GOES_ON = {"to", "at", "with", "in", "on", "of", "for", "by", "before"}
_FUNCTION = {"the", "a", "an", "his", "her", "its", "their", "our", "this", "that", "these", "those", "of", "in",
             "on", "at", "to", "for", "with", "by", "and", "or", "from", "as", "since", "after", "before"}
ITEM_WORDS = 14  # a list item's phrase at most


def kind_items(sentences: Sequence[Snippet], kinds: Sequence[str]) -> list[Snippet]:
    """Each named thing of a kind the sentences mention, as the exact phrase around its kind word: the
    words before it up to a function word ("the New START Treaty" -> "New START Treaty", "his May 2023
    speech" -> "May 2023 speech") and, when a preposition follows, the words after it up to a comma
    or the sentence's end ("speech to French ambassadors"). Only phrases with a name or a number in
    them (a capital letter that does not open the sentence, or a digit) are things the text names; in
    document order, each phrase once, numbered from 1."""
    said = re.compile(rf"\b(?:{'|'.join(map(re.escape, sorted(kinds, key=len, reverse=True)))})\b", re.I)
    items: list[Snippet] = []
    seen: set[str] = set()
    for sentence in sentences:
        text = sentence.text
        for found in said.finditer(text):
            start, end = found.start(), found.end()
            for word in reversed(list(re.finditer(r"\S+", text[: found.start()]))[-5:]):
                if word.group().lower().strip("()") in _FUNCTION or re.search(r"[,;:.—–“”\"]$", word.group()):
                    break
                start = word.start()
            following = re.match(r"\s+(\w+)", text[end:])
            if following and following.group(1).lower() in _GOES_ON:
                stop = _ITEM_END.search(text, end)
                words = list(re.finditer(r"\S+", text[end : stop.start() if stop else len(text)]))
                end += words[min(len(words), ITEM_WORDS) - 1].end() if words else 0
            phrase = text[start:end]
            named = re.search(r"\d", phrase) or any(start + m.start() > 0 for m in re.finditer(r"\b[A-Z]", phrase))
            if not named or phrase.lower() in seen:
                continue
            seen.add(phrase.lower())
            items.append(replace(sentence, n=len(items) + 1, start=sentence.start + start, end=sentence.start + end,
                                 text=phrase))
    return items
