"""Questions -> retrieved passages -> prompt -> generated answer -> verified citations.

The public API: ``Pipeline`` (index, search, answer, stream), ``Conversation`` for follow-ups,
``Library`` for several collections, one frozen ``Settings``, the values they return and the errors
they raise. The web app, the CLI and the evaluator are thin layers over these names.
"""

from qa.answer import AnswerSettings
from qa.errors import (
    BackendUnavailable,
    CorpusError,
    GenerationError,
    IndexCorrupt,
    IndexLocked,
    IndexNotFound,
    IndexOutOfDate,
    InvalidArgument,
    InvalidQuestion,
    ModelChecksumError,
    ModelNotFound,
    QAError,
    QuestionFileError,
)
from qa.library import Library, UploadRejected
from qa.pipeline import Conversation, Pipeline
from qa.retrieve import Hit, RetrievalSettings
from qa.settings import Settings
from qa.types import REFUSAL, Answer, Citation, Retrieved, StreamEvent, Timings, Token

__all__ = [
    "REFUSAL", "Answer", "AnswerSettings", "BackendUnavailable", "Citation", "Conversation", "CorpusError",
    "GenerationError", "Hit", "IndexCorrupt", "IndexLocked", "IndexNotFound", "IndexOutOfDate", "InvalidArgument",
    "InvalidQuestion", "Library", "ModelChecksumError", "ModelNotFound", "Pipeline", "QAError", "QuestionFileError",
    "RetrievalSettings", "Retrieved", "Settings", "StreamEvent", "Timings", "Token", "UploadRejected",
]
