"""Readers of PDF, Word and HTML files: their text, page starts and headings, with exact offsets."""

from embeddings.extract.blocks import Block, Extracted, Piece, Section, assemble, page_at, section_at
from embeddings.extract.formats import EXTRACTED_SUFFIXES, TEXT_SUFFIXES, expected_kind, extract, sniff

__all__ = [
    "Block", "EXTRACTED_SUFFIXES", "Extracted", "Piece", "Section", "TEXT_SUFFIXES", "assemble",
    "expected_kind", "extract", "page_at", "section_at", "sniff",
]
