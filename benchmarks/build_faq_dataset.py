"""Build a second retrieval dataset (HTML, Debian administration) from Debian packages.

    python benchmarks/build_faq_dataset.py [--out /tmp/second-corpus/debian-faq]
        [--debs /tmp/second-corpus/debs]

Same format as shared/datasets/python-docs: `corpus/` + `questions.jsonl` (id, question, answer,
gold). Each question-shaped section of the Debian FAQ (`debian-faq`, "N.M. Question?") becomes one
question; its answer becomes `corpus/faq/<chapter>-<n>.html` (n: order in the chapter, never a slug)
with the question heading removed, the chapter tables of contents dropped, and cross-reference
link texts that quote a question heading cut to their label ("Section 7.2"), so no file holds a
question's text. Question subsections are split out of their parent's answer; the FAQ's other
sections stay as answer files with no question. Distractors, same domain: the Debian Reference
(`debian-reference-en`, one file per chapter section) and the Debian Administrator's Handbook
(`debian-handbook`, en-US pages as shipped). The .deb files are downloaded with `apt-get download`
when missing from --debs. Writes a README.md with package versions and licences.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from bs4 import BeautifulSoup, Tag

PACKAGES = {
    "debian-faq": ("usr/share/doc/debian/FAQ", "see its copyright file: verbatim and modified "
                   "copies permitted under the same notice (SPI, 1996-2003)"),
    "debian-reference-en": ("usr/share/debian-reference", "GPL-2+"),
    "debian-handbook": ("usr/share/doc/debian-handbook/html/en-US", "GPL-2.0+ or CC-BY-SA-3.0"),
}
NUMBER = re.compile(r"^\s*((?:\d+\.)+)\s*")
MIN_WORDS = 15  # a shorter answer is not a question
MIN_OWN_WORDS = 10  # words outside links: an answer that is only a link is not one


def fetch(package: str, debs: Path) -> tuple[Path, str]:
    """The package's unpacked tree and version, downloading the .deb if it is missing."""
    debs.mkdir(parents=True, exist_ok=True)
    found = sorted(debs.glob(f"{package}_*.deb"))
    if not found:
        if not shutil.which("apt-get"):
            sys.exit(f"{package}_*.deb is not in {debs} and apt-get is unavailable: run "
                     f"`apt-get download {package}` on a Debian machine and copy the file there")
        print(f"downloading {package} with apt-get", file=sys.stderr)
        done = subprocess.run(["apt-get", "download", package], cwd=debs)
        found = sorted(debs.glob(f"{package}_*.deb"))
        if done.returncode or not found:
            sys.exit(f"`apt-get download {package}` failed (no Debian archive reachable?)")
    deb = found[-1]
    tree = debs / package
    if not tree.is_dir():
        subprocess.run(["dpkg-deb", "-x", str(deb), str(tree)], check=True)
    version = subprocess.run(["dpkg-deb", "-f", str(deb), "Version"], check=True,
                             capture_output=True, text=True).stdout.strip()
    return tree / PACKAGES[package][0], version


def page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{title}</title></head>'
            f"<body>\n{body}\n</body></html>\n")


def words(node: Tag) -> list[str]:
    return node.get_text(" ").split()


def heading_of(section: Tag) -> str:
    head = section.find(re.compile("^h[1-6]$"))
    return " ".join(head.get_text(" ").split()) if head else ""


def answer_text(node: Tag) -> str:
    lines = (" ".join(line.split()) for line in node.get_text("\n").split("\n\n"))
    return "\n".join(line for line in lines if line)


def neutralise_xrefs(soup: Tag) -> int:
    """Cut cross-reference texts that quote a question ("Section 7.2, “…?”") to their label."""
    count = 0
    for link in soup.find_all("a", class_="xref"):
        if "?" in str(link.get("title", "")) or "?" in link.get_text():
            link.string = link.get_text(" ").split(",")[0].strip()
            del link["title"]
            count += 1
    return count


@dataclass
class Unit:
    """One FAQ section: its number, question ('' when its heading is not one), page and file."""

    number: str
    question: str
    title: str
    node: Tag
    file: str = ""


def drop_titlepage(node: Tag) -> None:
    titlepage = node.find("div", class_="titlepage")
    if isinstance(titlepage, Tag):
        titlepage.decompose()


def faq_units(folder: Path) -> tuple[list[Unit], int]:
    """One Unit per FAQ section and chapter introduction, and the count of xrefs cut."""
    units: list[Unit] = []
    cut = 0
    for path in sorted(folder.glob("*.en.html")):
        if path.name.startswith("index."):  # the table of contents lists every question
            continue
        soup = BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")
        cut += neutralise_xrefs(soup)
        chapter = soup.select_one("div.chapter, div.appendix")
        title = " ".join(soup.title.get_text(" ").split()) if soup.title else ""
        if chapter is None:
            continue
        for toc in chapter.find_all("div", class_="toc"):
            toc.decompose()
        found: list[Unit] = []
        # Deepest and last first: a question subsection leaves its parent's answer.
        for section in reversed(chapter.find_all("div", class_="section")):
            heading = heading_of(section)
            is_question = "?" in heading
            if not is_question and section.find_parent("div", class_="section") is not None:
                continue  # a plain subsection ("8.1.1 dpkg") is part of its parent's answer
            number = NUMBER.match(heading)
            section.extract()
            drop_titlepage(section)
            found.append(Unit(number.group(1).rstrip(".") if number else "",
                              NUMBER.sub("", heading) if is_question else "", title, section))
        drop_titlepage(chapter)
        found = [u for u in [*found, Unit("", "", title, chapter)] if words(u.node)]
        found.sort(key=lambda u: [int(x) for x in u.number.split(".") if x] or [0])
        name = next(u.number for u in found if u.number).split(".")[0]
        for n, unit in enumerate(found):
            unit.file = f"faq/{name}-{n}.html"
        units += found
    return units, cut


def reference_units(folder: Path) -> list[tuple[str, str]]:
    """(file, html) per Debian Reference chapter section (and chapter introduction)."""
    out: list[tuple[str, str]] = []
    for path in sorted(folder.glob("*.en.html")):
        if path.name.startswith("index."):
            continue
        soup = BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")
        chapter = soup.select_one("div.chapter, div.appendix, div.preface")
        if chapter is None:
            continue
        title = " ".join(soup.title.get_text(" ").split()) if soup.title else path.stem
        stem = path.name.split(".")[0]
        sections = chapter.find_all("div", class_="section", recursive=False)
        for n, section in enumerate(sections, 1):
            out.append((f"reference/{stem}-{n}.html", page(title, str(section.extract()))))
        for toc in chapter.find_all("div", class_="toc"):
            toc.decompose()
        if len(words(chapter)) >= MIN_WORDS:
            out.append((f"reference/{stem}-0.html", page(title, str(chapter))))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("/tmp/second-corpus/debian-faq"))
    parser.add_argument("--debs", type=Path, default=Path("/tmp/second-corpus/debs"))
    args = parser.parse_args()
    trees = {name: fetch(name, args.debs) for name in PACKAGES}
    corpus = args.out / "corpus"
    if corpus.exists():
        shutil.rmtree(corpus)
    units, cut = faq_units(trees["debian-faq"][0])
    questions, dropped = [], []
    for unit in units:
        node = unit.node
        target = corpus / unit.file
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(page(unit.title, str(node)), encoding="utf-8")
        if not unit.question:
            continue
        link_words = sum(len(words(a)) for a in node.find_all("a"))
        total = len(words(node))
        if total < MIN_WORDS or total - link_words < MIN_OWN_WORDS:
            dropped.append(unit.number)
            continue
        text = " ".join(node.get_text(" ").split()).lower()
        if " ".join(unit.question.split()).lower() in text:
            sys.exit(f"question {unit.number} is still in its gold file {unit.file}")
        questions.append({"id": unit.number, "question": unit.question,
                          "answer": answer_text(node), "gold": [unit.file]})
    distractors = reference_units(trees["debian-reference-en"][0])
    for name, html in distractors:
        (corpus / name).parent.mkdir(parents=True, exist_ok=True)
        (corpus / name).write_text(html, encoding="utf-8")
    handbook = [p for p in sorted(trees["debian-handbook"][0].glob("*.html"))
                if p.name != "index.html"]  # the table of contents
    (corpus / "handbook").mkdir(parents=True, exist_ok=True)
    for path in handbook:
        shutil.copyfile(path, corpus / "handbook" / path.name)
    with open(args.out / "questions.jsonl", "w", encoding="utf-8") as out:
        for row in questions:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    texts = {p: BeautifulSoup(p.read_text(encoding="utf-8"), "html.parser").get_text(" ")
             for p in corpus.rglob("*.html")}
    stats = {
        "files": len(texts), "faq_files": len(units), "reference_files": len(distractors),
        "handbook_files": len(handbook), "questions": len(questions),
        "dropped_short_answers": dropped, "xrefs_cut": cut,
        "text_mb": round(sum(len(" ".join(t.split())) for t in texts.values()) / 1e6, 2),
        "html_mb": round(sum(p.stat().st_size for p in texts) / 1e6, 2),
    }
    versions = "\n".join(f"- `{name}` {trees[name][1]} (Debian bookworm), licence: {licence}"
                         for name, (_, licence) in PACKAGES.items())
    (args.out / "README.md").write_text(f"""# debian-faq

A second retrieval dataset, held out from python-docs: a different domain (Debian system
administration) and format (HTML), built by `benchmarks/build_faq_dataset.py` from Debian packages:

{versions}

- `corpus/faq/`: one file per section of the Debian FAQ, named `<chapter>-<n>.html` (n = order in
  the chapter), its heading removed, chapter tables of contents dropped, and cross-reference texts
  that quoted a question heading cut to their label ("Section 7.2"); `<title>` is the FAQ chapter's.
- `corpus/reference/`: the Debian Reference, one file per chapter section (distractors).
- `corpus/handbook/`: the Debian Administrator's Handbook, en-US HTML pages as shipped
  (distractors).
- `questions.jsonl`: one line per FAQ question section: `id` (the FAQ section number), `question`
  (its heading), `answer` (the section's text, a reference), `gold` (the file under `corpus/`).
  Questions whose answer has under {MIN_WORDS} words, or under {MIN_OWN_WORDS} outside links, are
  left out (their files stay).

Stats: {json.dumps(stats)}
""", encoding="utf-8")
    print(json.dumps(stats))


if __name__ == "__main__":
    main()
