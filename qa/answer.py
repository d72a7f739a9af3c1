"""Step 8, answer: retrieve, prompt, generate, verify — one streamed pass per question.

The one decision: the model's words are streamed to the user as they come, but the final event
carries the *verified* answer (``qa.citation.verification``), which may differ: markers corrected, unsupported
sentences dropped, or a refusal when nothing is grounded. Retrieval that finds nothing close enough
refuses before the model is even asked.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace

from embeddings.documents import Document
from qa.broad import plan_broad, scope_of, search_broad
from qa.citation.words import content_words
from qa.extractive import best_snippet, names_described, naming_test
from qa.prompting.broad import naming_snippets
from qa.shapes import described
from qa.citation.broad import extract, list_items, thin, verify_broad
from qa.citation.verification import verify
from qa.conversation import clean_rewrite, joined, looks_like_follow_up, rewrite_messages
from qa.errors import InvalidArgument, check_positive_whole
from qa.generation.base import Generator
from qa.prompting.messages import build_messages
from qa.prompting.snippets import Snippet, select_snippets
from qa.prompting.styles import STYLES
from qa.retrieve import Hit, Retriever, check_k, clean_question
from qa.shapes import SHAPES, classify
from qa.types import REFUSAL, Answer, Citation, Retrieved, StreamEvent, Timings, Token

# Tokens of passage text in the prompt, per answer style, when the settings do not say: the
# speed/accuracy dial, since the first token waits for every prompt token (docs/DESIGN.md, step 8).
CONTEXT_TOKENS = {"sentence": 60, "short": 200}
# Shapes whose answer is their snippets themselves, with no model call (docs/DESIGN.md, "Extractive
# answers"): a summary, whose snippets are its document's central sentences, and an explanation or a
# description, answered by its best snippet (`qa.extractive.best_snippet`). Lists and comparisons are
# written by the model, which measured better there.
EXTRACTIVE: tuple[str, ...] = ("summary", "explain", "describe")
ONE_SNIPPET = ("explain", "describe")  # extractive shapes whose answer is their best snippet alone
EXTRACT_WORDS = 110  # an extractive answer's length at most (the issue asks 30-120 words)


@dataclass(frozen=True)
class AnswerSettings:
    min_relevance: float = 0.2  # best dense cosine below which the documents are judged silent
    context_tokens: int | None = None  # tokens of passage text in the prompt; None: CONTEXT_TOKENS[style]
    max_passages: int = 5  # retrieved passages that may give sentences: the evidence may be in the 5th
    max_answer_tokens: int = 96  # generation cap: answers are one or two sentences
    style: str = "sentence"  # "sentence" or "short" (only the answering words): see qa.prompting.styles.STYLES
    shapes: bool = True  # sentence answers take the question's shape (qa.shapes); False: every one is one fact
    extractive: tuple[str, ...] = EXTRACTIVE  # shapes answered with the passages' own sentences, no model call

    def __post_init__(self) -> None:
        if self.context_tokens is not None:
            check_positive_whole("context tokens", self.context_tokens)
        unknown = set(self.extractive) - set(SHAPES) - {"none"}
        if unknown or "fact" in self.extractive:
            raise InvalidArgument(f"extractive shapes must be among {', '.join(s for s in SHAPES if s != 'fact')}, "
                                  f"got {', '.join(sorted(unknown or {'fact'}))}")
        if self.style not in STYLES:
            raise InvalidArgument(f"answer style must be one of {', '.join(STYLES)}, got {self.style!r}")

    @property
    def budget(self) -> int:
        """Tokens of passage text in the prompt: ``context_tokens``, else the style's default."""
        return self.context_tokens if self.context_tokens is not None else CONTEXT_TOKENS[self.style]


def standalone(question: str, history: Sequence[tuple[str, str]], generator: Generator, *,
               style: str = "sentence") -> tuple[str, str]:
    """(the question to answer, the text to search for): ``question`` itself, or for a follow-up its
    rewrite with the conversation (`qa.conversation`), asked after the fixed messages of ``style``'s
    answer prompt, which the generator keeps cached. A follow-up the model fails to rewrite is
    answered as asked, from a search for it joined to the previous question."""
    if not looks_like_follow_up(question, history):
        return question, question
    prefix = build_messages([], question, style=style)[:-1]
    reply = "".join(generator.generate(rewrite_messages(question, history, prefix), max_tokens=48, stop=["\n"]))
    rewrite = clean_rewrite(reply, question)
    return (rewrite, rewrite) if rewrite else (question, joined(question, history))


def stream_answer(
    question: str,
    *,
    retriever: Retriever,
    generator: Generator,
    k: int,
    history: Sequence[tuple[str, str]] = (),
    settings: AnswerSettings = AnswerSettings(),
) -> Iterator[StreamEvent]:
    """Yield ``Retrieved``, then ``Token`` pieces, then exactly one final ``Answer``."""
    started = time.perf_counter()
    check_k(k)
    asked = clean_question(question)
    history = [(clean_question(q), a) for q, a in history if q and q.strip()]
    query, searched = standalone(asked, history, generator, style=settings.style)
    shape = classify(query) if settings.shapes and settings.style == "sentence" else SHAPES["fact"]
    if shape.name == "compare" and len(scope_of(query, retriever).docs) < 2:  # one actor at two times
        shape = SHAPES["explain"]
    hits: tuple[Hit, ...] = tuple(search_broad(shape, query, searched, retriever, k=max(k, shape.passages))
                                  if shape.broad else retriever.search(searched, k=k))
    retrieved_at = time.perf_counter() - started
    yield Retrieved(hits, query)

    def finish(text: str, raw: str, refused: bool, citations=(), notes=(), first=None, n_prompt=0, n_out=0) -> Answer:
        timings = Timings(retrieved_at, first, time.perf_counter() - started, n_prompt, n_out)
        return Answer(question, text, tuple(citations), hits, refused, timings, query, raw, tuple(notes))

    named = ((shape.name in ("summary", "compare") and bool(scope_of(query, retriever).docs))  # close by definition
             or (shape.name == "describe" and names_described(query, hits)))
    if not hits or (max(h.dense_score for h in hits) < settings.min_relevance and not named):
        yield finish(REFUSAL, "", True, notes=["no passage is close enough to the question"])
        return
    if shape.broad:
        plan = plan_broad(shape, query, searched, hits, retriever, count_tokens=generator.count_tokens,
                                 max_passages=shape.passages)
        if plan.refusal:
            yield finish(REFUSAL, "", True, notes=[plan.refusal])
            return
        snippets, messages, max_tokens, stop = plan.snippets, plan.messages, shape.max_tokens, ["Question:", "\n\n\n"]
    else:
        snippets = select_snippets(hits, retriever, searched, budget=settings.budget,
                                   max_passages=settings.max_passages, count_tokens=generator.count_tokens)
        messages = build_messages(snippets, query, style=settings.style)
        max_tokens, stop = settings.max_answer_tokens, ["\n\n", "Question:"]
    named_things = shape.broad and bool(plan.kinds)  # a list of the named things of a kind: no model call
    extractive = shape.name in settings.extractive or named_things  # the snippets are the answer
    # a broad answer's first line is started for the model ("-"), so that it goes on with a sentence
    prefill = messages[-1]["content"] if messages and messages[-1]["role"] == "assistant" else ""
    pieces: list[str] = []
    first_token = None
    for piece in () if extractive else generator.generate(messages, max_tokens=max_tokens, stop=stop):
        if first_token is None:
            first_token = time.perf_counter() - started
            piece = prefill + piece
        pieces.append(piece)
        yield Token(piece)
    raw = "".join(pieces)
    documents = {s.passage.doc: retriever.document_text(s.passage.doc) for s in snippets}

    def closeness(snippet: Snippet, start: int, end: int) -> float:
        """The best cosine to the question of a stored sentence (or sentence pair) inside the span.
        Asked only for a cited span sharing no word with the question, so a question that is not
        the text searched (a follow-up whose rewrite failed) is encoded only then."""
        question_vector = retriever.query_vector(query)
        units = retriever.sentence_vectors(snippet.passage).items()
        return max((float(v @ question_vector) for (s, e), v in units if start <= s and e <= end), default=-1.0)

    if extractive:
        if named_things:
            checked = extract(snippets, documents, k=len(snippets), bullets=True)
        elif shape.name in ONE_SNIPPET:  # its best snippet; each document's, when it names several
            groups = [[s for s in snippets if s.passage.doc == doc] for doc in plan.docs] or [list(snippets)]
            bests = [best for group in groups if (best := best_snippet(
                group, retriever, query, words=EXTRACT_WORDS // len(groups), naming=shape.name == "describe"))]
            if shape.name == "describe" and len(bests) == 1 and content_words(described(query)):
                bests = _more_naming(bests[0], retriever, query)
            unnamed = () if bests else ("no passage names what was asked",)
            checked = extract(bests, documents, unnamed, k=len(bests), sources=len({b.passage.doc for b in bests}) > 1)
        else:
            count = plan.sentences  # "in three sentences": the three the plan chose
            checked = extract(snippets, documents, k=count or 0, words=None if count else EXTRACT_WORDS,
                              sources=shape.name == "compare", best_first=not count)
        first_token = time.perf_counter() - started
        yield Token(checked.text)
    elif shape.broad:
        capped = bool(raw) and generator.count_tokens(raw[len(prefill):]) >= max_tokens - 1
        checked = verify_broad(raw, snippets, query, documents, closeness, scoped=plan.scoped, prose=shape.prose,
                               truncated=capped, each_on_topic=shape.name == "describe")
        if shape.name == "summary" and plan.scoped and thin(checked):
            checked = extract(snippets, documents, checked.notes, fallback=True)
        elif shape.name == "list" and plan.items and 0 < list_items(checked) < plan.items:
            # "the two shortcomings" answered with one: the sentence that names them is shown instead
            best = best_snippet(snippets, retriever, query, words=EXTRACT_WORDS)
            note = (f"the model listed {list_items(checked)} of the {plan.items} items asked for: "
                    "the best sentence is shown")
            checked = extract([best] if best else [], documents, (*checked.notes, note), k=1)
    else:
        checked = verify(raw, snippets, query, documents, closeness)
    n_prompt = 0 if extractive else sum(generator.count_tokens(m["content"]) for m in messages)
    citations = located(checked.citations, retriever.stored.documents)
    yield finish(checked.text, raw, checked.refused, citations, checked.notes, first_token,
                 n_prompt, generator.count_tokens(raw) if raw else 0)


def _more_naming(best: Snippet, retriever: Retriever, question: str) -> list[Snippet]:
    """A description's best snippet with the other sentences of its document that name what it
    describes, closest to the question first, while the answer stays within ``EXTRACT_WORDS``; in
    document order, each cited. "How do the articles portray Putin?" is answered by what they say of
    him wherever they say it. On the 24 descriptions of the nine broad sets (with a surname naming a
    person, `qa.extractive.naming_test`): accuracy 0.917 -> 0.958, point recall 0.787 -> 0.808,
    citation precision 1.0 -> 0.989; the other 23 answers unchanged (most fill the words alone)."""
    chosen, used = [best], len(best.text.split())
    for other in sorted(naming_snippets(retriever, {best.passage.doc}, question, naming_test(question)),
                        key=lambda s: -s.score):
        size = len(other.text.split())
        if used + size <= EXTRACT_WORDS and all(other.end <= c.start or other.start >= c.end for c in chosen):
            chosen.append(other)
            used += size
    return sorted(chosen, key=lambda s: s.start)


def located(citations: Sequence[Citation], documents: Mapping[str, Document]) -> list[Citation]:
    """Each citation with the page of its start (PDFs) and the heading path it sits under, from its
    document's own layout: "p. 12 · Results"."""
    return [replace(c, page=documents[c.doc].page_at(c.start), section=documents[c.doc].section_at(c.start, c.end))
            if c.doc in documents else c for c in citations]
