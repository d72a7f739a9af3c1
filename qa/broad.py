"""Step 8b, broad answers: which snippets and which prompt an explanation, description, list,
summary or comparison gets (``qa.shapes`` decides the shape).

The one decision: the scope is settled before the model is asked, from the question's words and
the index's metadata: a summary reads the central sentences of the document (or section) it names,
a comparison the best sentences of each document it names, and the others the retrieved passages
with a larger budget than a one-fact answer. A question naming a document, section or person that
no document holds is refused here, without a model call.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from types import MappingProxyType

import numpy as np

from embeddings.documents import guess_meta
from embeddings.paragraphs import split_sentences
from qa.citation.words import content_words, question_topic, years
from qa.prompting.broad import build_broad_messages, central_snippets, per_document_snippets
from qa.injection import looks_like_injection
from qa.prompting.snippets import Snippet, is_prose, points_back, select_snippets, sentence_scores
from qa.references import Scope, documents_named, naming_names, resolve, unknown_names
from qa.retrieve import Hit, Retriever
from qa.shapes import Shape, asked_items, asked_sentences, described

# Weight of closeness to the document's title, against closeness to the mean of its sentences, when
# a summary chooses its sentences: the title of an article states its argument, so its sentences
# that say the title's points score higher. 0.5 took 16 of the 41 points of the 7 summary questions
# of dev_broad and heldout_broad into the prompt, against 8 with centrality alone (docs/DESIGN.md).
TITLE_FOCUS = 0.5


@dataclass(frozen=True)
class Plan:
    snippets: list[Snippet] = field(default_factory=list)
    messages: list[dict] = field(default_factory=list)
    scoped: bool = False  # the snippets come from the documents the question names (their topic)
    refusal: str = ""  # why the question is refused before asking the model ("" when it is asked)
    sentences: int | None = None  # how many sentences the user asked a summary to have ("in three sentences")
    items: int | None = None  # how many items a list question asks for ("the two shortcomings")


@lru_cache(maxsize=8)
def _vocabulary(retriever: Retriever) -> frozenset[str]:
    """Every content word of the corpus: texts, titles, authors."""
    words: set[str] = set()
    for doc in retriever.stored.documents.values():
        words |= content_words(f"{doc.text} {doc.meta.title} {doc.meta.author or ''}")
    return frozenset(words)


def sections(retriever: Retriever) -> list[tuple[str, str]]:
    """(document, heading) of every section the index knows, in corpus order."""
    return list(dict.fromkeys((p.doc, p.section) for p in retriever.passages if p.section))


@lru_cache(maxsize=32)  # asked up to three times per answer (shape, relevance, plan)
def scope_of(question: str, retriever: Retriever) -> Scope:
    return resolve(question, retriever.stored.documents, sections(retriever), lambda q: _names(q, retriever))


@lru_cache(maxsize=32)  # asked by the scope, the named documents and the search without them
def _names(question: str, retriever: Retriever) -> Mapping[str, str]:
    """`qa.references.naming_names` of ``question``, looked up once (read-only)."""
    return MappingProxyType(naming_names(question, retriever.stored.documents, holding(retriever)))


def holding(retriever: Retriever) -> Callable[[str], set[str]]:
    """For `qa.references`: the documents that may hold a name, those with a passage holding its
    rarest word by BM25's index (every document when it has no word BM25 keeps)."""
    def documents(name: str) -> set[str]:
        kept = {word: retriever.terms(word) for word in name.split()}
        words = [word for word, terms in kept.items() if terms]
        if not words:
            return set(retriever.stored.documents)
        scores = retriever.bm25_scores(max(words, key=lambda word: retriever.term_weight(kept[word][0])))
        return {retriever.passages[row].doc for row in np.flatnonzero(scores > 0)}
    return documents


def search_broad(shape: Shape, question: str, searched: str, retriever: Retriever, *, k: int) -> list[Hit]:
    """A broad question's passages. An explanation, description or list that names its documents ("In
    Faure's piece, how...", "What is GLOBSEC in the Momtaz article?") is answered from those alone, searched
    without the names that named them: rare as they are, they would draw the search to the author's
    biography or byline (as ``_unnamed`` says for comparisons). Summaries and comparisons read their
    documents themselves (``plan_broad``)."""
    options = {"k": k, "bm25_weight": shape.bm25_weight, "titles": shape.bm25_titles}
    docs = (documents_named(question, retriever.stored.documents, lambda q: _names(q, retriever))
            if shape.name not in ("summary", "compare") else ())
    if not docs:
        hits = retriever.search(searched, **options)
    else:
        hits = retriever.search(_unnamed(searched, retriever, docs), within=set(docs), **options)
    return naming_first(question, hits) if shape.name == "describe" else hits


def naming_first(question: str, hits: Sequence[Hit]) -> list[Hit]:
    """A description's passages with those that name what it describes first, in their order, ranks
    renumbered: the snippets' budget goes to them, since only they may answer (``best_snippet``). "What is
    GLOBSEC and why does it keep coming up?" ranked first the passages matching the rest of its words."""
    if not content_words(described(question)):
        return list(hits)
    names = _naming(question)
    ordered = sorted(hits, key=lambda h: (not names(h.passage.text), h.rank))
    return [replace(h, rank=n) for n, h in enumerate(ordered, start=1)]


def names_described(question: str, hits: Sequence[Hit]) -> bool:
    """Whether a description question says what it describes and a passage among ``hits`` names all of
    it: then the passages are close by definition, however far the question's other words ("What is
    GLOBSEC?": one acronym, which the embedder places nowhere near its passage)."""
    return bool(content_words(described(question))) and any(_naming(question)(h.passage.text) for h in hits)


def plan_broad(shape: Shape, question: str, searched: str, hits: Sequence[Hit], retriever: Retriever, *,
               count_tokens: Callable[[str], int], max_passages: int) -> Plan:
    """The snippets and messages for a broad ``shape``, or a refusal."""
    missing = unknown_names(question, set(_vocabulary(retriever)))
    if missing:
        return Plan(refusal=f"no document mentions {', '.join(missing)}")
    scope = scope_of(question, retriever) if shape.name in ("summary", "compare") else Scope()
    if scope.missing:
        return Plan(refusal=f"no document or section is called {scope.missing!r}")
    budget = shape.context_tokens
    sentences = None
    if shape.name == "summary" and scope.docs and scope.topic:  # "what the article says about X": X in it
        snippets, _ = per_document_snippets(retriever, scope.docs, scope.topic, budget=budget,
                                            count_tokens=count_tokens, passages=4, anchors=5)
        scoped = True
    elif shape.name == "summary" and scope.docs:
        within = part_passages(retriever, scope)
        if within is not None and not within:
            return Plan(refusal=f"nothing comes {scope.part} the section {scope.section!r}")
        section = None if scope.part else scope.section  # a part is summarised as its document is
        title = section or " ".join(t for t in (_title(retriever, d) for d in scope.docs) if t)
        sentences = asked_sentences(question)
        snippets = central_snippets(retriever, scope.docs, title, budget=budget, count_tokens=count_tokens,
                                    section=section, focus=TITLE_FOCUS if title else 0.0, count=sentences,
                                    within=within)
        scoped = True
    elif shape.name == "compare" and len(scope.docs) > 1:
        topic = _unnamed(searched, retriever, scope.docs)
        snippets, _ = per_document_snippets(retriever, scope.docs, topic, budget=budget,
                                            count_tokens=count_tokens, follow=shape.follow)
        scoped = False
    else:
        snippets = select_snippets(hits, retriever, searched, budget=budget, max_passages=max_passages,
                                   count_tokens=count_tokens, anchors=shape.anchors, per_passage=shape.per_passage,
                                   prose_only=True, follow=shape.follow)
        snippets = _in_reading_order(snippets) if shape.name in ("list", "summary") else snippets
        scoped = False
    if not snippets:
        return Plan(refusal="no passage to answer from")
    instruction = shape.instruction
    if shape.name == "compare" and len({s.passage.doc for s in snippets}) > 1:
        instruction = compare_instruction(snippets, instruction)
    messages = build_broad_messages(snippets, question, instruction)
    if shape.prose:
        messages.append({"role": "assistant", "content": "-"})
    items = asked_items(question) if shape.name == "list" else None
    return Plan(snippets, messages, scoped, sentences=sentences, items=items)


# The opening or ending of a document without headings to go by: this share of its passages (at least one).
PART_SHARE = 0.25


def part_passages(retriever: Retriever, scope: Scope) -> set[str] | None:
    """The ids of the passages that the part of ``scope``'s documents it names holds: what comes before
    or after its section, the opening (the passages before the first heading, else the first quarter)
    or the ending (the last quarter); None when it names no part."""
    if not scope.part:
        return None
    chosen: set[str] = set()
    for doc in scope.docs:
        passages = [p for p in retriever.passages if p.doc == doc]
        share = max(1, round(PART_SHARE * len(passages)))
        if scope.part in ("before", "after"):
            rows = [i for i, p in enumerate(passages) if p.section == scope.section]
            if not rows:
                continue
            chosen |= {p.id for p in (passages[: rows[0]] if scope.part == "before" else passages[rows[-1] + 1 :])}
        elif scope.part == "opening":
            lead = next((i for i, p in enumerate(passages) if p.section), 0)  # before the first heading
            chosen |= {p.id for p in passages[: lead or share]}
        else:
            chosen |= {p.id for p in passages[-share:]}
    return chosen


def _unnamed(question: str, retriever: Retriever, docs: Sequence[str]) -> str:
    """The question without its documents' authors' names ("Compare how Faure and Momtaz deal with
    arms control") or the names that named them ("the Russia Matters analysis": `qa.references.naming_names`):
    they name the documents, not what to compare, and rare as they are, they would draw each
    document's search to the paragraph about its author or its byline."""
    names = content_words(" ".join([*(retriever.stored.documents[doc].meta.author or "" for doc in docs),
                                    *_names(question, retriever)]))
    kept = []
    for word in question.split():
        said = content_words(word)  # "Momtaz's" -> {"momtaz"}; "and" -> set()
        if not said or not said <= names:
            kept.append(word)
    rest = " ".join(kept)
    return rest if content_words(rest) - content_words("compare differ difference how deal views") else question


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
        names = _naming(question)
        snippets = [s for s in snippets if names(s.text)]
    asked_years = years(question)
    if asked_years and any(asked_years <= years(s.text) for s in snippets):
        snippets = [s for s in snippets if asked_years <= years(s.text)]
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
    if points_back(document[start:end]):
        before = [(s, e) for s, e in spans if e <= start]
        if before and is_prose(document[slice(*before[-1])]) and not looks_like_injection(document[slice(*before[-1])]):
            start = before[-1][0]
    elif not naming and _CONSEQUENCE.match(document[start:end]):
        start = _causes(document, spans, start, end, words)
    end = _carried_on(document, spans, start, end, question, words)
    return replace(best, n=1, start=start, end=end, text=document[start:end])


# A sentence that gives a consequence of what comes before it ("As a result, EU member states still lack the
# means..."): an explanation's causes are the sentences before it. On the 49 explanations of the eight broad
# sets: accuracy 0.673 -> 0.694, point recall 0.609 -> 0.624 (one, hc06; one sentence before: 0.614).
_CONSEQUENCE = re.compile(r"^\W*(?:as a result|as a consequence|consequently|therefore|thus|hence|accordingly"
                          r"|for (?:this|that|these|those) reasons?|(?:this|that) is why)\b", re.I)
CAUSE_SENTENCES = 2  # at most this many sentences before it


def _causes(document: str, spans: Sequence[tuple[int, int]], start: int, end: int, words: int) -> int:
    """The start of an explanation ``document[start:end]`` that gives a consequence, taken back through
    the sentences before it in its passage (``spans``), at most ``CAUSE_SENTENCES`` of them, while they
    are prose and the whole stays within ``words`` words."""
    used = len(document[start:end].split())
    for s, e in [span for span in spans if span[1] <= start][::-1][:CAUSE_SENTENCES]:
        sentence = document[s:e]
        if used + len(sentence.split()) > words or not is_prose(sentence) or looks_like_injection(sentence):
            break
        start, used = s, used + len(sentence.split())
    return start


def _naming(question: str) -> Callable[[str], bool]:
    """Whether a text names what a description ``question`` asks about: every word of it in one
    sentence when the wording says what (`qa.shapes.described`: "the Bratislava treaty"), else a word
    of the question's topic."""
    thing = content_words(described(question))
    if thing:
        return lambda text: any(thing <= content_words(text[a:b]) for a, b in split_sentences(text))
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


def _title(retriever: Retriever, doc: str) -> str:
    """The document's title, or "" when it is only its file name (which says nothing of its argument)."""
    title = retriever.stored.documents[doc].meta.title
    return "" if content_words(title) == content_words(guess_meta(doc, "").title) else title


def compare_instruction(snippets: Sequence[Snippet], instruction: str) -> str:
    """The comparison's instruction naming each source and its passages, so that the model says
    which source holds which view: "first what Faure writes ([1] to [3]), then what Momtaz writes..."."""
    groups: dict[str, list[int]] = {}
    for s in snippets:
        author = s.passage.author or s.passage.title.split(":")[0]
        groups.setdefault(author.split()[-1] if s.passage.author else f"«{author}»", []).append(s.n)
    parts = [f"what {name} writes ({'[%d]' % ns[0] if len(ns) == 1 else f'[{ns[0]}] to [{ns[-1]}]'})"
             for name, ns in groups.items()]
    order = "first " + ", then ".join(parts)
    return instruction.replace("first what one source says, then what the other says", order)


def _in_reading_order(snippets: Sequence[Snippet]) -> list[Snippet]:
    """Renumbered passage by passage (best passage first), each passage's snippets in its own order:
    a list then follows its sources' order."""
    from dataclasses import replace

    ordered = sorted(snippets, key=lambda s: (s.hit.rank, s.start))
    return [replace(s, n=n) for n, s in enumerate(ordered, start=1)]
