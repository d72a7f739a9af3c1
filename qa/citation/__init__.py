"""Step 7, cite: verified citations with exact offsets for the sentences of a generated answer."""

from qa.citation.claims import is_refusal, parse_markers, split_claims, strip_citations, withheld_draft
from qa.citation.verification import Verified, verify
from qa.citation.words import content_words

__all__ = ["Verified", "content_words", "is_refusal", "parse_markers", "split_claims", "strip_citations", "verify",
           "withheld_draft"]
