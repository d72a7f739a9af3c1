"""Step 8, answer: retrieve, prompt, generate, verify — one streamed pass per question.

The one decision: the model's words are streamed to the user as they come, but the final event
carries the *verified* answer (``qa.cite.verify``), which may differ: markers corrected, unsupported
sentences dropped, or a refusal when nothing is grounded. Retrieval that finds nothing close enough
refuses before the model is even asked.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from qa.cite import verify
from qa.conversation import clean_rewrite, joined, looks_like_follow_up, rewrite_messages
from qa.generate import Generator
from qa.errors import InvalidArgument, check_positive_whole
from qa.prompt import STYLES, Snippet, build_messages, select_snippets
from qa.retrieve import Hit, Retriever, check_k, clean_question
from qa.types import REFUSAL, Answer, Retrieved, StreamEvent, Timings, Token


# Tokens of passage text in the prompt, per answer style, when the settings do not say. On this CPU
# the first token waits for every prompt token after the cached prefix (~60 tokens/s on a 2-core
# Xeon), so this is the speed/accuracy dial (bench/bench_e2e.py --context-tokens 200,120,60 on the
# dev and held-out sets). A sentence answer to the seed questions needs the one or two sentences that
# match best: at 60 tokens the first token came in 1.8-1.9 s instead of 4.7-4.8 s, and answers were
# no worse (right on 29 of 40 answerable questions instead of 26), though 7 of them were refused
# instead of 4. Short SQuAD-style answers often sit in a neighbouring sentence of a long paragraph:
# at 60 tokens SQuAD 1.1 F1 fell from 67.1 to 62.4 (200 questions, seed 0), so that style keeps 200.
CONTEXT_TOKENS = {"sentence": 60, "short": 200}


@dataclass(frozen=True)
class AnswerSettings:
    min_relevance: float = 0.2  # best dense cosine below which the documents are judged silent
    context_tokens: int | None = None  # tokens of passage text in the prompt; None: CONTEXT_TOKENS[style]
    # retrieved passages that may contribute sentences to the prompt: all five, since the evidence of
    # some questions sits in the 4th or 5th (bench/bench_snippets.py: 308 vs 306 of 400 SQuAD 1.1 questions
    # at 60 tokens, 367 vs 361 at 200; seed questions 29 vs 27 of 40)
    max_passages: int = 5
    max_answer_tokens: int = 96  # generation cap: answers are one or two sentences
    style: str = "sentence"  # "sentence" or "short" (only the answering words): see qa.prompt.STYLES

    def __post_init__(self) -> None:
        if self.context_tokens is not None:
            check_positive_whole("context tokens", self.context_tokens)
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
    hits: tuple[Hit, ...] = tuple(retriever.search(searched, k=k))
    retrieved_at = time.perf_counter() - started
    yield Retrieved(hits, query)

    def finish(text: str, raw: str, refused: bool, citations=(), notes=(), first=None, n_prompt=0, n_out=0) -> Answer:
        timings = Timings(retrieved_at, first, time.perf_counter() - started, n_prompt, n_out)
        return Answer(question, text, tuple(citations), hits, refused, timings, query, raw, tuple(notes))

    if not hits or max(h.dense_score for h in hits) < settings.min_relevance:
        yield finish(REFUSAL, "", True, notes=["no passage is close enough to the question"])
        return
    snippets = select_snippets(hits, retriever, searched, budget=settings.budget,
                               max_passages=settings.max_passages, count_tokens=generator.count_tokens)
    messages = build_messages(snippets, query, style=settings.style)
    pieces: list[str] = []
    first_token = None
    for piece in generator.generate(messages, max_tokens=settings.max_answer_tokens, stop=["\n\n", "Question:"]):
        if first_token is None:
            first_token = time.perf_counter() - started
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

    checked = verify(raw, snippets, query, documents, closeness)
    n_prompt = sum(generator.count_tokens(m["content"]) for m in messages)
    yield finish(checked.text, raw, checked.refused, checked.citations, checked.notes, first_token,
                 n_prompt, generator.count_tokens(raw) if raw else 0)
