"""The question-side errors, beside the index-side ones they re-export (one hierarchy, ``QAError``)."""

from embeddings.errors import (
    CorpusError,
    EncoderError,
    IndexCorrupt,
    IndexLocked,
    IndexNotFound,
    IndexOutOfDate,
    ModelChecksumError,
    ModelNotFound,
    QAError,
)


class InvalidQuestion(QAError, ValueError):
    """The question is empty, whitespace only, or otherwise unusable."""


class InvalidArgument(QAError, ValueError):
    """An option is out of range (``k`` of 0, a negative limit, an unknown backend...)."""


class BackendUnavailable(QAError):
    """The requested generation backend is not installed or cannot run this model."""


class GenerationError(QAError):
    """The language model failed while generating."""


class QuestionFileError(QAError):
    """A batch question file is malformed (bad JSON, missing fields, duplicate ids)."""


# Errors of the setup, not of one question: a batch run stops on them, since every later question
# would fail the same way.
SETUP_ERRORS = (BackendUnavailable, CorpusError, EncoderError, IndexCorrupt, IndexLocked, IndexNotFound, IndexOutOfDate,
                ModelChecksumError, ModelNotFound)


def check_positive_whole(label: str, value: object) -> None:
    """Raise InvalidArgument unless ``value`` is an int >= 1 (True is not a count here)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgument(f"{label} must be a positive whole number, got {value!r}")


__all__ = [
    "BackendUnavailable",
    "CorpusError",
    "EncoderError",
    "GenerationError",
    "IndexCorrupt",
    "IndexLocked",
    "IndexNotFound",
    "IndexOutOfDate",
    "InvalidArgument",
    "InvalidQuestion",
    "ModelChecksumError",
    "ModelNotFound",
    "QAError",
    "QuestionFileError",
    "SETUP_ERRORS",
]
