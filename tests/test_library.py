"""Upload checks of ``qa.library`` (the collections themselves are exercised through the app in test_app.py)."""

import pytest

from qa.library import MAX_UPLOAD_BYTES, UploadRejected, check_upload, collection_slug, safe_filename


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("notes.txt", "notes.txt"),
        ("../../etc/passwd.txt", "passwd.txt"),
        ("..\\..\\windows\\evil.md", "evil.md"),
        (".hidden.txt", "hidden.txt"),
        ("Report (final)?.TXT", "Report _final_.txt"),
        ("a/b/../c.md", "c.md"),
        ("x" * 300 + ".md", "x" * 100 + ".md"),
    ],
)
def test_safe_filename_keeps_uploads_inside_their_folder(name, expected):
    assert safe_filename(name) == expected


@pytest.mark.parametrize("name", ["", "   ", "..", "/", "../", ".txt", "noextension", "\x00"])
def test_safe_filename_refuses_names_with_nothing_left(name):
    with pytest.raises(ValueError, match="not a usable file name"):
        safe_filename(name)


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("paper.pdf", b"%PDF-1.4 text", "corrupt or truncated PDF"),
        ("slides.pptx", b"PK\x03\x04", "only .txt, .md, .pdf, .docx, .html, .htm files"),
        ("notes.txt", b"caf\xe9 latin-1", "not UTF-8"),
        ("notes.txt", b"", "empty"),
        ("notes.md", b" \n\t \n", "empty"),
        ("notes.txt", b"text\x00with a NUL", "binary"),
        ("notes.txt", b"a" * (MAX_UPLOAD_BYTES + 1), "too large"),
    ],
)
def test_check_upload_says_why_a_file_cannot_be_indexed(name, data, reason):
    with pytest.raises(ValueError, match=reason):
        check_upload(name, data)


def test_check_upload_returns_the_exact_text():
    assert check_upload("../Über.md", "# Über\n\nÇa va.\n".encode()) == ("Über.md", "# Über\n\nÇa va.\n")


@pytest.mark.parametrize(("name", "slug"), [("My notes!", "my-notes"), ("../../x", "x"), ("  A  B  ", "a-b")])
def test_collection_slug(name, slug):
    assert collection_slug(name) == slug


@pytest.mark.parametrize("name", ["", "  ", "!!!", "../.."])
def test_collection_slug_refuses_empty_names(name):
    with pytest.raises(UploadRejected):
        collection_slug(name)
