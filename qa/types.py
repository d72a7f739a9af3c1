"""The values an answer is made of: ``Citation``, ``Timings``, ``Answer`` and the stream's events.

Every structured output (CLI ``--json``, the web API, the evaluator's results file) is
``Answer.to_dict()``, whose fields are those of a results line in the evaluation FORMAT.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from qa.retrieve import Hit

REFUSAL = "I cannot find the answer in the documents."


@dataclass(frozen=True)
class Citation:
    n: int  # the marker used in the answer text: "[n]"
    doc: str  # document path relative to the corpus folder
    passage_id: str
    start: int  # offsets into the document's decoded text of the supporting sentence(s)
    end: int
    text: str  # == document[start:end]
    passage_start: int = 0  # the whole passage the span sits in (for showing context)
    passage_end: int = 0
    page: int | None = None  # PDF: the 1-based page of the span's start
    section: str | None = None  # the heading path the span sits under, if the document has headings

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"citation number must be >= 1, got {self.n}")
        if not 0 <= self.start < self.end or len(self.text) != self.end - self.start:
            raise ValueError(f"citation span [{self.start}:{self.end}] does not fit its text of {len(self.text)} chars")

    def to_dict(self) -> dict:
        """The results-file shape of FORMAT.md; ``page`` and ``section`` only where the document has them."""
        shown = {"n": self.n, "doc": self.doc, "passage_id": self.passage_id, "start": self.start,
                 "end": self.end, "text": self.text}
        return shown | {key: value for key, value in (("page", self.page), ("section", self.section)) if value}

    @property
    def where(self) -> str:
        """Where the span is, as a reader cites it: "p. 12 · Results", "p. 3", or ""."""
        return " · ".join(x for x in (self.page and f"p. {self.page}", self.section) if x)


@dataclass(frozen=True)
class Timings:
    retrieve_s: float = 0.0  # question to ranked passages
    first_token_s: float | None = None  # question to first streamed answer token (None: nothing streamed)
    total_s: float = 0.0  # question to complete, verified answer
    prompt_tokens: int = 0
    generated_tokens: int = 0


@dataclass(frozen=True)
class Answer:
    question: str  # as asked
    text: str  # exactly what the user is shown, with verified [n] markers
    citations: tuple[Citation, ...]
    passages: tuple[Hit, ...]  # retrieved passages in rank order (shown even on a refusal)
    refused: bool  # the documents do not contain the answer
    timings: Timings = field(default_factory=Timings)
    standalone_question: str = ""  # the follow-up rewritten with the conversation, when it was
    raw_text: str = ""  # what the model generated, before verification
    notes: tuple[str, ...] = ()  # what verification changed ("removed [4]: no such passage", ...)

    def to_dict(self) -> dict:
        """A results line of FORMAT.md (without ``id`` and ``scores``, which the evaluator adds)."""
        return {
            "question": self.question,
            "answer": self.text,
            "refused": self.refused,
            "citations": [c.to_dict() for c in self.citations],
            "passages": [h.to_dict() for h in self.passages],
            "latency_s": round(self.timings.total_s, 4),
            "ttft_s": None if self.timings.first_token_s is None else round(self.timings.first_token_s, 4),
        }


@dataclass(frozen=True)
class Token:
    """A piece of answer text as the model produces it (before verification)."""

    text: str


@dataclass(frozen=True)
class Retrieved:
    """Sent once, before the first token: the passages the answer will be based on."""

    passages: tuple[Hit, ...]
    standalone_question: str


StreamEvent = Retrieved | Token | Answer  # a stream ends with exactly one Answer
