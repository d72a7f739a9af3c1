"""Generate step, prompt lookup: draft tokens copied from the prompt, for speculative decoding.

The one decision: a grounded answer copies much of its wording from the passages in its prompt, so
the tokens that followed the answer's last few tokens where they occur in the prompt are a good
guess at what comes next. The backend checks a draft in one batched evaluation and keeps the
tokens the model would have chosen itself (greedy), several per step while the model copies. In
exact arithmetic that is the answer plain decoding gives; a batch rounds differently from one token
at a time, so where two tokens are nearly tied the choice can differ (4 of 42 dev answers did,
bench/bench_draft.py). No second model is loaded; an answer that copies nothing costs only the
failed checks (docs/DESIGN.md, "Speculative decoding").
"""

from __future__ import annotations

from collections.abc import Sequence


class PromptLookup:
    """Where each n-gram of a prompt occurs, to draft continuations of a growing answer.

    >>> lookup = PromptLookup([5, 6, 7, 8, 9, 6, 7, 1], max_ngram=3, min_ngram=2)
    >>> lookup.draft([0, 6, 7], 3)  # "6 7" last occurs at 5-6; what followed it there
    [1]
    >>> lookup.draft([5, 6, 7], 3)  # "5 6 7" occurs once: the longer match wins
    [8, 9, 6]
    >>> lookup.draft([4, 4], 3)
    []
    """

    def __init__(self, prompt: Sequence[int], *, max_ngram: int = 3, min_ngram: int = 2) -> None:
        if not 1 <= min_ngram <= max_ngram:
            raise ValueError(f"need 1 <= min_ngram <= max_ngram, got {min_ngram}, {max_ngram}")
        self.prompt = list(prompt)
        self.sizes = range(max_ngram, min_ngram - 1, -1)
        self._where: dict[tuple[int, ...], int] = {}  # n-gram -> the position after its last occurrence
        for n in self.sizes:
            for end in range(n, len(self.prompt)):  # an n-gram ending at the prompt's end has no continuation
                self._where[tuple(self.prompt[end - n : end])] = end

    def draft(self, tokens: Sequence[int], k: int) -> list[int]:
        """Up to ``k`` prompt tokens that followed the longest n-gram ending ``tokens``, or []."""
        if k <= 0:
            return []
        for n in self.sizes:
            if len(tokens) < n:
                continue
            end = self._where.get(tuple(tokens[-n:]))
            if end is not None:
                return self.prompt[end : end + k]
        return []
