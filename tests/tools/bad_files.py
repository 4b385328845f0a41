"""Bad input files for the ingest fault tests: each a file a user may really have on disk."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest


def deny_reading(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make `path` unreadable: chmod 000, and where that does not stop this process (tests run
    as root, which reads anything) refuse the `os.open` the loader uses with EACCES, as the
    kernel would for another user."""
    path.chmod(0)
    try:
        with open(path, "rb"):
            readable = True
    except PermissionError:
        readable = False
    if not readable:
        return
    target = os.path.realpath(path)
    real_open = os.open

    def guarded(file: str | os.PathLike[str], flags: int, *args: object, **kwargs: object) -> int:
        if os.path.realpath(file) == target:
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, flags, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", guarded)


def nested_html(depth: int) -> str:
    """A page with `depth` nested divs around one sentence."""
    return (
        "<html><body>" + "<div>" * depth + "<p>deep text</p>" + "</div>" * depth
        + "</body></html>"
    )


def encrypted_pdf(password: str = "secret") -> bytes:
    """A one-page PDF that needs `password` to open (RC4, no crypto library needed)."""
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(200, 200)
    writer.encrypt(user_password=password, owner_password="owner", algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()
