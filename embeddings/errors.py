"""Every error the tool reports to a user, in one small hierarchy.

The Python API raises these; the CLI prints ``str(error)`` on one line and exits non-zero, and the
web app shows it as ``gr.Error``. ``qa.errors`` re-exports them and adds the question-side ones.
"""


class QAError(Exception):
    """Base class: a problem the user can understand and fix; never a bug."""


class CorpusError(QAError):
    """The corpus folder is missing, empty or unreadable."""


class EncoderError(QAError):
    """The embedding model cannot be loaded or used."""


class IndexNotFound(QAError):
    """No index has been built in the index directory yet."""


class IndexOutOfDate(QAError):
    """The index no longer matches its corpus files or its embedder; it must be updated."""


class IndexCorrupt(QAError):
    """Index files are truncated, edited or unreadable; they are never answered from."""


class IndexLocked(QAError):
    """Another process is writing this index directory right now."""


class ModelNotFound(QAError):
    """A model file, folder, packaged part or hub id cannot be found."""


class ModelChecksumError(QAError):
    """Model weights joined from packaged parts do not have the expected sha256."""
