"""Which sentences reach the prompt: qa.prompting.snippets.select_snippets over hand-set sentence scores."""

import numpy as np

from embeddings.paragraphs import Passage, split_sentences
from qa.prompting.snippets import select_snippets
from qa.retrieve import Hit

LONG = ("Since his first election the president has spoken at length, in many speeches and interviews "
        "and at every summit he attended, about the terms of the security order that he wants to revise "
        "with his partners over the coming years.")
RUNNER_UP = "A victory by the invader would be the end of that security order."
FAR = "The ministry published a report on ammunition production."
SHORT = "Talks went on."


class HandScoredRetriever:
    """The part of a Retriever that select_snippets uses, over documents whose sentences have a
    chosen cosine to every question and share no words with it (so the cosine is the score)."""

    def __init__(self, documents: dict[str, tuple[tuple[str, float], ...]]) -> None:
        self.texts, self.vectors = {}, {}
        dim = 1 + sum(len(sentences) for sentences in documents.values())
        self.query = np.eye(dim, dtype=np.float32)[0]
        axis = 1
        for doc, sentences in documents.items():
            text = " ".join(sentence for sentence, _ in sentences)
            self.texts[doc] = text
            for (start, end), (_, cosine) in zip(split_sentences(text), sentences, strict=True):
                vector = cosine * self.query + np.sqrt(1 - cosine**2) * np.eye(dim, dtype=np.float32)[axis]
                self.vectors[doc, start, end] = vector
                axis += 1

    def hits(self) -> list[Hit]:
        hits = []
        for rank, (doc, text) in enumerate(self.texts.items(), start=1):
            passage = Passage(f"{doc}#0", doc, 0, len(text), text, title=doc)
            hits.append(Hit(rank, 1 / rank, passage, 0.5, 0.0, 0, len(text)))
        return hits

    def query_vector(self, question: str) -> np.ndarray:
        return self.query

    def sentence_vectors(self, passage: Passage) -> dict[tuple[int, int], np.ndarray]:
        return {(s, e): v for (doc, s, e), v in self.vectors.items() if doc == passage.doc}

    def terms(self, text: str) -> list[str]:
        return []

    def question_terms(self, question: str) -> list[str]:
        return []

    def term_weight(self, term: str) -> float:
        return 1.0

    def document_text(self, doc: str) -> str:
        return self.texts[doc]


def words(text: str) -> int:
    return len(text.split())


def shown(retriever: HandScoredRetriever, **options) -> list[str]:
    snippets = select_snippets(retriever.hits(), retriever, "What would a win mean?", max_passages=5,
                               count_tokens=words, **options)
    for s in snippets:
        assert retriever.document_text(s.hit.doc)[s.start : s.end] == s.text
    return [s.text for s in snippets]


def test_a_runner_up_that_scores_almost_as_well_as_the_best_is_shown_over_budget():
    # The best sentence fills the budget alone; the runner-up in the next passage scores 0.80 - 0.05
    # (one rank down) = 0.75 against 0.77, and a far third 0.60.
    retriever = HandScoredRetriever({
        "speech.txt": ((LONG, 0.77), (SHORT, 0.10)),
        "interview.txt": ((RUNNER_UP, 0.80),),
        "report.txt": ((FAR, 0.70),),
    })
    assert words(LONG) + words(RUNNER_UP) > 42
    assert shown(retriever, budget=42) == [LONG, RUNNER_UP]
    assert shown(retriever, budget=42, margin=0.0) == [LONG]  # the budget alone would leave it out


def test_a_sentence_that_scores_clearly_worse_still_waits_for_the_budget():
    retriever = HandScoredRetriever({
        "speech.txt": ((LONG, 0.77), (SHORT, 0.10)),
        "interview.txt": ((RUNNER_UP, 0.70),),
    })
    assert shown(retriever, budget=42) == [LONG]
    assert shown(retriever, budget=60) == [f"{LONG} {SHORT}", RUNNER_UP]  # room: neighbours come too


def test_the_first_passage_always_shows_its_best_sentence():
    # The retriever ranked speech.txt first, but sentences of the next two passages score higher and
    # the first of them fills the budget alone.
    retriever = HandScoredRetriever({
        "speech.txt": ((SHORT, 0.30), (FAR, 0.40)),
        "interview.txt": ((LONG, 0.80),),
        "report.txt": ((RUNNER_UP, 0.78),),
    })
    assert shown(retriever, budget=42) == [LONG, FAR]  # over budget, and without its weaker neighbour
