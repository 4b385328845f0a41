"""Ingestion: load files (txt, md, rst, html, pdf), chunk them by heading, write them to a store."""

from __future__ import annotations

from ragloom.tools.ingest.chunking import count_tokens, split_document
from ragloom.tools.ingest.loaders import SUPPORTED_SUFFIXES, load_document
from ragloom.tools.ingest.pipeline import FileFailure, IngestReport, ingest_paths, source_id

__all__ = [
    "SUPPORTED_SUFFIXES", "FileFailure", "IngestReport", "count_tokens", "ingest_paths",
    "load_document", "source_id", "split_document",
]
