"""The one text module: tokens, stop words, stemming, markup stripping, sentence splitting and
small scoring helpers, shared by ingestion, both stores' BM25, the extractive engine, metrics and
the Weaviate test server.

- `tokenize`: lower-cased letter/digit runs, exactly SQLite FTS5 `unicode61` and Weaviate `word`
  tokenization, so every BM25 sees the same terms; `query_terms` drops stop words from a query.
- `terms`: code-aware content terms (dotted names kept, stop words dropped, Snowball-stemmed)
  for the extractive engine's scoring.

Sentences come out of reStructuredText, Markdown or plain text. Literal blocks (rst `::`,
indented code, doctest `>>>` blocks, Markdown fences) are not sentences: they are attached as
`code` to the sentence that introduces them, so an answer can quote the example with its lead-in.
Headings, directive lines, comments and separators are dropped.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

__all__ = [
    "STOPWORDS", "Sentence", "blocks", "bm25_scores", "clean_markup", "clean_query", "coverage",
    "idf_table", "is_code_token", "is_meta_instruction", "normalize_space", "printable",
    "prose_view", "query_terms", "raw_tokens", "split_sentences", "stem", "term_set", "terms",
    "tfidf_matrix",
    "to_markdown", "tokenize",
]

STOPWORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been
    before being below between both but by can cannot could did do does doing done down
    during each either else etc few for from further get gets got had has have having he her
    here hers herself him himself his how however i if in into is it its itself just let
    lets like may me might more most must my myself need no nor not now of off on once one
    only or other ought our ours ourselves out over own per please same shall she should so
    some such than that the their theirs them themselves then there these they this those
    through thus to too under until up upon us use used uses using very via was we were what
    when where which while who whom whose why will with within without would yes yet you
    your yours yourself yourselves tell show explain give know want way something anything
    thing things really doesn don isn aren wasn weren didn won shouldn couldn wouldn hasn
    haven e.g i.e""".split()  # noqa: SIM905
)

_WORD = re.compile(r"[^\W_]+")  # letters and digits, like SQLite FTS5 unicode61


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens: the one tokenizer every BM25 (both stores, the Weaviate test
    server) uses."""
    return [t.lower() for t in _WORD.findall(text)]


def query_terms(text: str) -> list[str]:
    """A query's distinct tokens without stop words (all of them when every one is a stop
    word, so "what is it" still searches)."""
    tokens = list(dict.fromkeys(tokenize(text)))
    kept = [t for t in tokens if t not in STOPWORDS]
    return kept or tokens


_CODE_TOKEN = re.compile(
    r"0[xX][0-9a-fA-F]*|0[oO][0-7]*|0[bB][01]*"  # hex / octal / binary literals and prefixes
    r"|[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*"  # words, dotted names, dunders
    r"|\d+(?:\.\d+)?"
)
_ROLE = re.compile(r":[\w:.+-]+:`(?:[^`<]*<)?([^`>]+)>?`")
_FOOTNOTE = re.compile(r"\s*\[(?:#|\*|\d+|#\w+)\]_")
_LITERAL = re.compile(r"``([^`]+)``")
_EMPH = re.compile(r"(\*\*|\*)([^*\n]+)\1")
_LINK = re.compile(r"`([^`<]+?)\s*(?:<[^>]+>)?`_{1,2}")
_MD_LINK = re.compile(r"\[([^\]]+)\]\([^)]+\)")
_SPACE = re.compile(r"\s+")
_UNDERLINE = re.compile(r"^\s*([=\-~^\"'`#*+<>:._])\1{2,}\s*$")
_DIRECTIVE = re.compile(r"^\s*\.\.\s+([\w:-]+)::\s*(.*)$")
_COMMENT = re.compile(r"^\s*\.\.(\s|$)")
_FIELD = re.compile(r"^\s*:[\w -]+:(\s|$)")
_MD_HEADING = re.compile(r"^\s{0,3}#{1,6}\s")
_FENCE = re.compile(r"^\s*(```|~~~)")
_BULLET = re.compile(r"^\s*(?:[-*+•]|\d+[.)]|#\.)\s+")
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[`*]*[A-Z0-9:`])")
_SOURCE_LINK = re.compile(r"^\*\*Source code:\*\*")
_ABBREVIATIONS = ("e.g.", "i.e.", "etc.", "vs.", "cf.", "Mr.", "Dr.", "No.", "approx.", "resp.")

# Directives whose body is prose worth reading; every other directive body is skipped,
# except code directives, whose body is code.
_PROSE_DIRECTIVES = frozenset(
    """note warning tip important caution attention hint danger error admonition seealso
    function class method attribute data exception describe decorator classmethod
    staticmethod abstractmethod coroutinemethod coroutinefunction opcode cmdoption option
    envvar impl-detail topic sidebar rubric""".split()  # noqa: SIM905
)
_NOTE_DIRECTIVES = frozenset(
    """note warning tip important caution attention hint danger error admonition seealso
    impl-detail topic sidebar rubric""".split()  # noqa: SIM905
)
_CODE_DIRECTIVES = frozenset({"code-block", "code", "sourcecode", "doctest", "testcode"})

# Sentences that talk to the assistant instead of about the subject (prompt injection).
_META_INSTRUCTION = re.compile(
    r"\b(ignore|disregard|forget|override)\b[^.]{0,40}\b(previous|prior|above|earlier|all|"
    r"your|the)\b[^.]{0,30}\b(instructions?|prompts?|rules|directions|context)\b"
    r"|\byou are now\b|\bas an ai\b|\bsystem prompt\b|\b(assistant|chatbot|ai|llm|model)s?\b"
    r"[^.]{0,20}\b(must|should|shall|will)\b[^.]{0,40}\b(say|answer|respond|reply|output|"
    r"print|reveal|tell)\b|\bdo not (follow|obey)\b|\bnew instructions\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Sentence:
    """One prose sentence of a text, in document order, with any code it introduces."""

    text: str  # the sentence as written (whitespace collapsed): quotable from the source
    position: int  # index among the text's sentences
    paragraph: int  # index of the paragraph it belongs to
    first_in_paragraph: bool = False
    code: str | None = None  # a literal block introduced by this sentence
    kind: str = "prose"  # 'prose', 'entry' (inside an API entry) or 'note' (an admonition)

    @property
    def clean(self) -> str:
        """The sentence with inline markup removed, for display."""
        return clean_markup(self.text)


def clean_markup(text: str) -> str:
    """Strip inline reST/Markdown markup (roles, literals, emphasis, links)."""
    text = _FOOTNOTE.sub("", text)
    text = _ROLE.sub(lambda m: m.group(1).lstrip("~!"), text)
    text = _LITERAL.sub(r"\1", text)
    text = _LINK.sub(r"\1", text)
    text = _MD_LINK.sub(r"\1", text)
    text = _EMPH.sub(r"\2", text)
    text = text.replace("\\ ", "").replace("\\", "")
    if text.endswith("::"):
        text = text[:-1]
    return _SPACE.sub(" ", text).strip()


_RST_LINK = re.compile(r"`([^`<]+?)\s*<([^>]+)>`_{1,2}")


def to_markdown(text: str) -> str:
    """Inline reST as Markdown, for display: roles and ``literals`` become `code`, links
    become [text](url), footnote references go."""
    text = _FOOTNOTE.sub("", text)
    text = _RST_LINK.sub(r"[\1](\2)", text)
    text = _ROLE.sub(lambda m: f"`{m.group(1).lstrip('~!')}`", text)
    text = _LITERAL.sub(r"`\1`", text)
    return _SPACE.sub(" ", text).strip()


_TERMINAL_ESCAPE = re.compile(
    r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[0-~])"
    r"|\x9b[0-?]*[ -/]*[@-~]"
)  # CSI and OSC sequences (7- and 8-bit), two-byte escapes
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # C0 (tab, newline kept), DEL, C1
_LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")  # bytes that were not UTF-8 (surrogateescape)


def printable(text: str) -> str:
    """Text safe to write to a terminal: terminal escape sequences removed, other control
    characters (NUL included) as spaces, bytes that were not UTF-8 as U+FFFD."""
    text = _TERMINAL_ESCAPE.sub("", text)
    text = _CONTROL.sub(" ", text)
    return _LONE_SURROGATE.sub("\ufffd", text)


def clean_query(text: str) -> str:
    """User-typed text (a question, a query, a filter, a tenant or thread id) as it may be
    searched, sent to a model, stored and printed: `printable`, stripped. Text that was only
    control characters comes back empty."""
    return printable(text).strip()


def normalize_space(text: str) -> str:
    """Collapse runs of whitespace to one space."""
    return _SPACE.sub(" ", text).strip()


# --- terms -----------------------------------------------------------------------------------


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """A light suffix stemmer: enough to match 'integers'/'integer', 'specified'/'specify'."""
    if len(word) <= 3 or not word.isalpha():
        return word
    if word.endswith(("ss", "us", "is")):
        return word
    for suffix, repl in (
        ("ational", "ate"), ("ization", "ize"), ("iveness", "ive"), ("fulness", "ful"),
        ("ousness", "ous"), ("ies", "y"), ("ied", "y"), ("sses", "ss"), ("ing", ""),
        ("edly", ""), ("ed", ""), ("ly", ""), ("es", "e"), ("s", ""),
    ):  # fmt: skip
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)] + repl
            break
    if word.endswith("e") and len(word) > 4:
        word = word[:-1]
    return word


def raw_tokens(text: str) -> list[str]:
    """Word-ish tokens, code-aware: keeps `os.path`, `__init__`, `0x`, `0o10` whole."""
    return [t.strip(".") for t in _CODE_TOKEN.findall(clean_markup(text)) if t.strip(".")]


def is_code_token(token: str) -> bool:
    """Dotted names, dunders, snake_case names and numeric literals."""
    return (
        "." in token
        or "_" in token
        or bool(re.fullmatch(r"0[xXoObB][0-9a-fA-F]*", token))
        or (any(c.isupper() for c in token[1:]) and any(c.islower() for c in token))
    )


def terms(text: str) -> list[str]:
    """Content terms of a text: lowercased, stopwords dropped, stemmed; dotted names also
    contribute their parts, so `os.path` matches a text mentioning `path`."""
    out: list[str] = []
    for token in raw_tokens(text):
        low = token.lower()
        if low in STOPWORDS or (len(low) < 2 and not low.isdigit()):
            continue
        if "." in low and all(len(p) <= 1 for p in low.split(".")):
            continue  # abbreviations such as "e.g"
        out.append(stem(low) if low.isalpha() else low)
        if "." in low:
            out += [stem(p) for p in low.split(".") if p and p not in STOPWORDS and len(p) > 1]
    return out


def term_set(text: str) -> set[str]:
    """The distinct content terms of a text."""
    return set(terms(text))


def is_meta_instruction(sentence: str) -> bool:
    """True for sentences addressed to an AI assistant (\"ignore previous instructions\")."""
    return bool(_META_INSTRUCTION.search(sentence))


# --- sentence splitting ------------------------------------------------------------------------


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def _split_prose(paragraph: str) -> list[str]:
    text = normalize_space(paragraph)
    if not text:
        return []
    parts: list[str] = []
    for piece in _SENTENCE_END.split(text):
        if parts and (parts[-1].endswith(_ABBREVIATIONS) or parts[-1].endswith("...")):
            parts[-1] = f"{parts[-1]} {piece}"
        else:
            parts.append(piece)
    return [p.strip() for p in parts if p.strip()]


_TABLE_ROW = re.compile(r"^(\|.*\||\+[-=+]+\+)$")


def blocks(text: str, prose: str = "prose") -> Iterable[tuple[str, str]]:
    """Yield (kind, piece) pairs of a text in order: kind is 'code' for literal blocks, 'table'
    for Markdown and grid tables, else
    'prose' for running text, 'entry' for the body of an API entry (function, class, ...) and
    'note' for admonitions."""
    lines = text.splitlines()
    i, n = 0, len(lines)
    para: list[str] = []
    expect_code = False  # the previous prose paragraph ended with '::'

    def flush() -> Iterable[tuple[str, str]]:
        if para:
            yield prose, "\n".join(para)
            para.clear()

    while i < n:
        line = lines[i]
        stripped = line.strip()
        if not stripped:
            yield from flush()
            i += 1
            continue
        if _FENCE.match(line):  # Markdown fenced code
            yield from flush()
            j = i + 1
            while j < n and not _FENCE.match(lines[j]):
                j += 1
            yield "code", "\n".join(lines[i + 1 : j])
            i, expect_code = j + 1, False
            continue
        if not para and _TABLE_ROW.match(stripped):  # Markdown or reST grid table: not prose
            j = i
            while j < n and _TABLE_ROW.match(lines[j].strip()):
                j += 1
            yield "table", "\n".join(lines[i:j])
            i = j
            continue
        base = _indent(line)
        if not para and (
            expect_code or stripped.startswith(">>>") or _indented_code(lines, i, base)
        ):
            # literal block: everything indented at least this much (or the doctest lines)
            j = i
            block: list[str] = []
            doctest = stripped.startswith(">>>") and not expect_code
            while j < n and (
                not lines[j].strip()
                or (_indent(lines[j]) >= base and not (doctest and not lines[j].strip()))
            ):
                if doctest and not lines[j].strip():
                    break
                block.append(lines[j])
                j += 1
            yield "code", "\n".join(b[base:] if len(b) >= base else b for b in block).strip("\n")
            i, expect_code = j, False
            continue
        directive = _DIRECTIVE.match(line)
        if directive and not para:
            name = directive.group(1).lower()
            j = i + 1
            while j < n and lines[j - 1].rstrip().endswith("\\"):  # signature continues
                j += 1
            body: list[str] = []
            while j < n and (not lines[j].strip() or _indent(lines[j]) > base):
                body.append(lines[j])
                j += 1
            inner = "\n".join(body)
            if name in _CODE_DIRECTIVES:
                yield "code", _dedent(inner)
            elif name in _PROSE_DIRECTIVES:
                kind = "note" if name in _NOTE_DIRECTIVES else "entry"
                yield from blocks(_dedent(_drop_fields(inner)), kind if prose == "prose" else prose)
            i, expect_code = j, False
            continue
        if _COMMENT.match(line) and not para:
            j = i + 1
            while j < n and (not lines[j].strip() or _indent(lines[j]) > base):
                j += 1
            i = j
            continue
        if _UNDERLINE.match(line):  # heading underline/overline or a transition
            if para and len(para) == 1:
                para.clear()  # the line above was a heading
            yield from flush()
            i += 1
            continue
        if _MD_HEADING.match(line) or (not para and _FIELD.match(line)):
            yield from flush()
            i += 1
            continue
        if para and _BULLET.match(line):
            yield from flush()
        if para and base > _indent(para[0]) + 1 and not _BULLET.match(para[0]):
            # an indented block right under a paragraph line (definition list body)
            yield from flush()
        para.append(line)
        expect_code = False
        if stripped.endswith("::"):
            yield from flush()
            expect_code = True
        i += 1
    yield from flush()


_CODE_LINE = re.compile(
    r"^\s*(\$ |>>>|\.\.\. |#|//|import |from \S+ import|def |class |return |@\w)"
    r"|[\w.\]\)]\s*[-+*/]?=\s*\S|\w\(.*\)\s*$|[;{}]\s*$|\s#\s"
)


def _indented_code(lines: list[str], i: int, base: int) -> bool:
    """An indented block (4+ spaces, after a blank line) whose lines mostly look like code:
    Markdown's indented code, or a reST quote of commands."""
    if base < 4 or (i > 0 and lines[i - 1].strip()):
        return False
    block = []
    for line in lines[i:]:
        if line.strip() and _indent(line) < base:
            break
        if line.strip():
            block.append(line)
    return sum(bool(_CODE_LINE.search(line)) for line in block) * 2 >= len(block)


def _drop_fields(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not _FIELD.match(line))


def _dedent(text: str) -> str:
    lines = text.splitlines()
    widths = [_indent(line) for line in lines if line.strip()]
    cut = min(widths) if widths else 0
    return "\n".join(line[cut:] for line in lines)


def split_sentences(text: str) -> list[Sentence]:
    """The prose sentences of `text`, in order, each with the code block it introduces."""
    sentences: list[Sentence] = []
    paragraph = 0
    for kind, block in blocks(text):
        if kind == "table":
            continue
        if kind == "code":
            if sentences and sentences[-1].code is None and block.strip():
                last = sentences[-1]
                sentences[-1] = Sentence(
                    last.text,
                    last.position,
                    last.paragraph,
                    last.first_in_paragraph,
                    block,
                    last.kind,
                )
            continue
        prose = _BULLET.sub("", block.strip(), count=1)
        if _SOURCE_LINK.match(prose):
            continue
        for k, sentence in enumerate(_split_prose(prose)):
            if not re.search(r"[A-Za-z]{2}", sentence):
                continue
            sentences.append(Sentence(sentence, len(sentences), paragraph, k == 0, None, kind))
        paragraph += 1
    return sentences


# --- scoring -------------------------------------------------------------------------------------


def idf_table(documents: Sequence[Iterable[str]]) -> dict[str, float]:
    """Smoothed BM25 idf over a small collection of term lists."""
    n = len(documents)
    df: Counter[str] = Counter()
    for doc in documents:
        df.update(set(doc))
    return {t: math.log(1.0 + (n - f + 0.5) / (f + 0.5)) for t, f in df.items()}


def bm25_scores(
    query: Sequence[str],
    documents: Sequence[Sequence[str]],
    idf: dict[str, float] | None = None,
    k1: float = 1.2,
    b: float = 0.75,
) -> np.ndarray:
    """BM25 of each document (a term list) for the query terms."""
    if not documents:
        return np.zeros(0)
    idf = idf if idf is not None else idf_table(documents)
    avg = max(1.0, sum(len(d) for d in documents) / len(documents))
    out = np.zeros(len(documents))
    qset = set(query)
    for i, doc in enumerate(documents):
        tf = Counter(t for t in doc if t in qset)
        norm = k1 * (1 - b + b * len(doc) / avg)
        out[i] = sum(idf.get(t, 0.0) * f * (k1 + 1) / (f + norm) for t, f in tf.items())
    return out


def coverage(query: Iterable[str], text_terms: Iterable[str], idf: dict[str, float]) -> float:
    """Idf-weighted share of the query's distinct terms that the text contains (0..1)."""
    qset = set(query)
    if not qset:
        return 0.0
    have = set(text_terms)
    unseen = max(idf.values(), default=1.0)  # a term no text has is as rare as it gets
    total = sum(idf.get(t, unseen) for t in qset)
    return sum(idf.get(t, unseen) for t in qset if t in have) / total if total else 0.0


def tfidf_matrix(docs: Sequence[Sequence[str]]) -> np.ndarray:
    """Row-normalised tf-idf vectors of term lists (rows may be zero)."""
    vocab: dict[str, int] = {}
    for doc in docs:
        for t in doc:
            vocab.setdefault(t, len(vocab))
    matrix = np.zeros((len(docs), max(1, len(vocab))), dtype=np.float32)
    idf = idf_table(docs)
    for i, doc in enumerate(docs):
        for t, f in Counter(doc).items():
            matrix[i, vocab[t]] = (1.0 + math.log(f)) * idf[t]
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)


# --- reading view for embedding ------------------------------------------------------------------

# API entries whose argument (the signature) names what the entry is about.
_ENTRY_DIRECTIVES = frozenset(
    """function class method attribute data exception describe decorator decoratormethod
    classmethod staticmethod abstractmethod coroutinemethod coroutinefunction opcode cmdoption
    option envvar property type macro member var struct union enum enumerator""".split()  # noqa: SIM905
)
# Directives whose body is running text that `blocks` would skip (tables, glossaries, ...).
_BODY_DIRECTIVES = frozenset(
    "list-table table csv-table glossary hlist only container centered".split()  # noqa: SIM905
)
_VERSION_DIRECTIVES = {
    "versionadded": "Added in version", "versionchanged": "Changed in version",
    "deprecated": "Deprecated since version", "deprecated-removed": "Deprecated since version",
    "versionremoved": "Removed in version",
}
_TABLE_BORDER = re.compile(r"^[+|]?[-=+| ]*$")


def _lead_comment_dropped(text: str) -> list[str]:
    """Lines of a chunk, without a leading comment line cut from its block (it would swallow
    the indented text after it), dedented."""
    lines = text.splitlines()
    if lines and _COMMENT.match(lines[0]) and not _DIRECTIVE.match(lines[0]):
        lines = lines[1:]
    widths = [_indent(line) for line in lines if line.strip()]
    cut = min(widths) if widths else 0
    return [line[cut:] for line in lines]


def _directives_as_prose(lines: list[str]) -> str:
    """Rewrite directive headers that carry meaning into plain lines, each body kept as prose:
    an API entry's signature, "Changed in version 3.7.", a table's caption."""
    out: list[str] = []
    for line in lines:
        match = _DIRECTIVE.match(line)
        if match:
            name, argument = match.group(1).lower(), match.group(2).strip().rstrip("\\").strip()
            indent = line[: _indent(line)]
            if name.split(":")[-1] in _ENTRY_DIRECTIVES and argument:
                out += [indent + argument, "", indent + ".. rubric::"]
                continue
            if name in _VERSION_DIRECTIVES:
                label = f"{_VERSION_DIRECTIVES[name]} {argument}."
                out += [indent + label, "", indent + ".. rubric::"]
                continue
            if name in _BODY_DIRECTIVES:
                out += ([indent + argument, ""] if argument else []) + [indent + ".. rubric::"]
                continue
        out.append(line)
    return "\n".join(out)


def prose_view(text: str, *, code_lines: int = 0) -> str:
    """What a text says, as a model reads it best: reST/Markdown markup stripped (roles,
    literals, links, emphasis), headings, comments, rules and directive options dropped, API
    signatures and version notes kept as plain lines, table cells as text, one line per block.

    Code blocks keep their first `code_lines` lines (0: dropped), so a fixed token budget holds
    more prose; a text that is nothing but code keeps all of it. Not what the stores embed by
    default (it lost on the tune half of python-docs); `benchmarks/retrieval_bench.py` builds
    `TOKENS:OVERLAP:prose` stores that embed it, to measure it on other corpora."""
    parts: list[str] = []
    code: list[str] = []
    for kind, piece in blocks(_directives_as_prose(_lead_comment_dropped(text))):
        if kind == "code":
            lines = [line.strip() for line in piece.splitlines() if line.strip()]
            code.append(" ".join(lines))
            if code_lines > 0 and lines:
                parts.append(" ".join(lines[:code_lines]))
            continue
        if kind == "table":
            cells = [
                cell.strip()
                for row in piece.splitlines() if not _TABLE_BORDER.match(row.strip())
                for cell in row.strip().strip("|").split("|")
            ]
            piece = " ".join(cell for cell in cells if cell)
        cleaned = clean_markup(_BULLET.sub("", piece.strip(), count=1))
        if cleaned:
            parts.append(cleaned)
    if not parts:
        parts = [c for c in code if c]
    return "\n".join(parts) if parts else normalize_space(clean_markup(text))
