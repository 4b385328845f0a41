"""`core.text.prose_view`: a chunk's text as the embedding model reads it best (markup,
directives, comments and code blocks stripped; signatures, version notes and table cells kept).
Measured as the embedded text on python-docs in benchmarks/RESULTS.md (`:prose` stores)."""

from __future__ import annotations

from ragloom.core.text import prose_view

REST_CHUNK = """\
.. _copying-files:

Use :func:`shutil.copy` to copy a file; see also :mod:`os.path` and ``copyfile``.

.. versionchanged:: 3.8
   Uses *fast-copy* syscalls on Linux.

.. code-block:: python

   import shutil
   shutil.copy("src.txt", "dst.txt")  # zyzzyvacode

.. function:: copymode(src, dst, *, follow_symlinks=True)

   Copy the permission bits from *src* to *dst*.

.. index:: single: copying
"""


def test_prose_view_strips_roles_directives_comments_and_code() -> None:
    view = prose_view(REST_CHUNK)
    assert view.splitlines() == [
        "Use shutil.copy to copy a file; see also os.path and copyfile.",
        "Changed in version 3.8.",
        "Uses fast-copy syscalls on Linux.",
        "copymode(src, dst, *, follow_symlinks=True)",
        "Copy the permission bits from src to dst.",
    ]
    assert "zyzzyvacode" not in view and ":func:" not in view and ".. " not in view


def test_prose_view_keeps_the_first_code_lines_when_asked() -> None:
    view = prose_view(REST_CHUNK, code_lines=1)
    assert "import shutil" in view
    assert "zyzzyvacode" not in view


def test_prose_view_of_a_code_only_text_keeps_the_code() -> None:
    assert prose_view(">>> import shutil\n>>> shutil.which('ls')") == (
        ">>> import shutil >>> shutil.which('ls')"
    )


def test_prose_view_does_not_let_a_cut_comment_swallow_the_chunk() -> None:
    """A chunk cut inside an indented block starts at a column-0 comment line (here a
    commented-out directive, as in the CPython docs); the indented prose after it is still
    read."""
    text = (".. .. index:: single: --; in regular expressions\n"
            "   .. .. index:: single: &&; in regular expressions\n\n"
            "   * Support of nested sets might be added in the future.\n")
    assert prose_view(text) == "Support of nested sets might be added in the future."


def test_prose_view_reads_list_tables_and_grid_tables() -> None:
    list_table = (".. list-table::\n   :widths: 50 50\n\n"
                  "   * - :func:`asyncio.run`\n     - Run a coroutine.\n")
    assert prose_view(list_table).splitlines() == ["- asyncio.run", "Run a coroutine."]
    grid = ("+------+-------+\n| Mode | Means |\n+======+=======+\n"
            "| r    | read  |\n+------+-------+")
    assert prose_view(grid) == "Mode Means r read"


def test_prose_view_leaves_plain_text_as_it_is() -> None:
    text = "Debian packages are installed with apt.\n\nRun apt update first."
    assert prose_view(text).splitlines() == [
        "Debian packages are installed with apt.", "Run apt update first."]
