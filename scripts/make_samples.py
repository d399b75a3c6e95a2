"""Build the small offline samples the package embeds in ``hub/samples/``.

A fresh machine has no ``../shared/data``; the app's Quick start and the CLI
fall back to these samples (``hub/samples.py``). The folder mirrors the layout
of ``../shared/data`` so that ``--data-dir hub/samples`` works as is:

* ``sst2/train.tsv``: a seeded random sample of SST-2 train (raw lines kept, so
  the TSV style is the source's: no quoting), in the sampled order, so any
  prefix (``--max-train-samples N``) is itself a uniform random sample;
* ``sst2/validation.tsv``: the whole validation split (872 rows), byte for byte;
* ``squad/xquad-en-train.json``: whole XQuAD articles in file order, as many as
  fit the byte budget;
* ``squad/dev-subset-v2.0.json``: the leading paragraphs of each of the 5 dev
  articles, until each has its share of the question budget (answerable and
  unanswerable questions as they come);
* ``wikitext-2/valid.txt``, ``test.txt``: the leading whole articles of each
  split that fit the byte budget;
* ``README.md``: sources, licences, the command, row counts, sizes, the seed.

Every task stays under 1 MB (checked; the script fails otherwise). Rerunning
with the same options rewrites identical files.

    python scripts/make_samples.py                      # defaults, as committed
    python scripts/make_samples.py --source /path/to/shared/data --seed 42
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = ROOT.parent / "shared" / "data"
DEFAULT_OUT = ROOT / "hub" / "samples"
TASK_LIMIT_BYTES = 1_000_000  # per task folder
TOP_HEADING = re.compile(r"^ = [^=].* = $")  # WikiText article title; " = = Section = = " is not one


def sample_tsv_lines(lines: list[str], n: int, seed: int) -> list[str]:
    """Header plus ``n`` data lines drawn without replacement, in the drawn order.

    >>> sample_tsv_lines(["h\\n", "a\\n", "b\\n", "c\\n"], 2, seed=0)
    ['h\\n', 'b\\n', 'c\\n']
    """
    header, rows = lines[0], lines[1:]
    if not 0 < n <= len(rows):
        raise ValueError(f"cannot sample {n} rows from {len(rows)}")
    return [header] + random.Random(seed).sample(rows, n)


def dumps(obj) -> str:
    """JSON in the source files' style (default separators, UTF-8 text)."""
    return json.dumps(obj, ensure_ascii=False)


def squad_articles_within(squad: dict, max_bytes: int, version: str) -> dict:
    """Whole articles in file order while the written file stays within ``max_bytes``."""
    out = {"version": version, "data": []}
    for article in squad["data"]:
        trial = {**out, "data": out["data"] + [article]}
        if len(dumps(trial).encode("utf-8")) > max_bytes:
            break
        out = trial
    if not out["data"]:
        raise ValueError(f"not even one article fits {max_bytes:,} bytes")
    return out


def squad_leading_paragraphs(squad: dict, questions: int, version: str) -> dict:
    """From every article, its leading paragraphs until it holds at least
    ``questions / n_articles`` questions (all articles and titles kept)."""
    share = -(-questions // len(squad["data"]))  # ceil
    out = {"version": version, "data": []}
    for article in squad["data"]:
        kept, n = [], 0
        for paragraph in article["paragraphs"]:
            if n >= share:
                break
            kept.append(paragraph)
            n += len(paragraph["qas"])
        out["data"].append({**article, "paragraphs": kept})
    return out


def text_head(text: str, max_bytes: int) -> str:
    """The leading whole WikiText articles within ``max_bytes`` (UTF-8); when the
    first article alone is longer, its leading whole lines.

    >>> text_head(" = A = \\n x\\n = B = \\n y\\n", 14)
    ' = A = \\n x\\n'
    """
    lines = text.splitlines(keepends=True)
    size, last_line_end, last_article_end, seen_title = 0, 0, 0, False
    for i, line in enumerate(lines):
        if TOP_HEADING.match(line.rstrip("\n")):
            if seen_title:  # a title after a title: the article before it ends here
                last_article_end = i
            seen_title = True
        size += len(line.encode("utf-8"))
        if size > max_bytes:
            break
        last_line_end = i + 1
    else:
        return text
    cut = last_article_end or last_line_end
    if cut == 0:
        raise ValueError(f"the first line alone is longer than {max_bytes:,} bytes")
    return "".join(lines[:cut])


def count_questions(squad: dict) -> tuple[int, int]:
    """(questions, answerable questions)."""
    qas = [q for a in squad["data"] for p in a["paragraphs"] for q in p["qas"]]
    return len(qas), sum(1 for q in qas if not q.get("is_impossible", False))


def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8", newline="")
    tmp.replace(path)


def build(args) -> dict:
    """Write every sample under ``args.out``; returns the facts for the README."""
    src, out = Path(args.source), Path(args.out)
    facts: dict = {}

    lines = (src / "sst2" / "train.tsv").read_text(encoding="utf-8").splitlines(keepends=True)
    sample = sample_tsv_lines(lines, args.sst2_train_rows, args.seed)
    write_text(out / "sst2" / "train.tsv", "".join(sample))
    labels = [line.rstrip("\n").rsplit("\t", 1)[1] for line in sample[1:]]
    facts["sst2/train.tsv"] = dict(rows=len(sample) - 1, of=len(lines) - 1,
                                   positive=labels.count("1"), negative=labels.count("0"))
    (out / "sst2").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src / "sst2" / "validation.tsv", out / "sst2" / "validation.tsv")
    n_val = len((out / "sst2" / "validation.tsv").read_text(encoding="utf-8").splitlines()) - 1
    facts["sst2/validation.tsv"] = dict(rows=n_val, of=n_val)

    train = json.loads((src / "squad" / "xquad-en-train.json").read_text(encoding="utf-8"))
    kept = squad_articles_within(train, args.squad_train_bytes, version=train["version"] + "; hub sample")
    write_text(out / "squad" / "xquad-en-train.json", dumps(kept))
    facts["squad/xquad-en-train.json"] = dict(
        articles=len(kept["data"]), of_articles=len(train["data"]),
        questions=count_questions(kept)[0], of=count_questions(train)[0])

    dev = json.loads((src / "squad" / "dev-subset-v2.0.json").read_text(encoding="utf-8"))
    kept = squad_leading_paragraphs(dev, args.squad_dev_questions, version=dev["version"])
    text = dumps(kept)
    if len(text.encode("utf-8")) > args.squad_dev_bytes:
        raise SystemExit(f"squad dev sample is {len(text.encode()):,} bytes > {args.squad_dev_bytes:,}; ask for fewer questions")
    write_text(out / "squad" / "dev-subset-v2.0.json", text)
    n, answerable = count_questions(kept)
    facts["squad/dev-subset-v2.0.json"] = dict(
        articles=len(kept["data"]), paragraphs=sum(len(a["paragraphs"]) for a in kept["data"]),
        questions=n, answerable=answerable, of=count_questions(dev)[0])

    for split in ("valid", "test"):
        full = (src / "wikitext-2" / f"{split}.txt").read_text(encoding="utf-8")
        head = text_head(full, args.wikitext_bytes)
        write_text(out / "wikitext-2" / f"{split}.txt", head)
        facts[f"wikitext-2/{split}.txt"] = dict(
            lines=len(head.splitlines()), of=len(full.splitlines()),
            articles=sum(1 for x in head.splitlines() if TOP_HEADING.match(x)))

    for rel in facts:
        facts[rel]["bytes"] = (out / rel).stat().st_size
    for task in {rel.split("/")[0] for rel in facts}:
        total = sum(v["bytes"] for k, v in facts.items() if k.startswith(task + "/"))
        if total >= TASK_LIMIT_BYTES:
            raise SystemExit(f"{task}: {total:,} bytes, over the {TASK_LIMIT_BYTES:,}-byte limit per task")
    return facts


def command_line(args) -> str:
    """The command that rebuilds these files (paths only when not the defaults)."""
    parts = ["python scripts/make_samples.py"]
    if Path(args.source).resolve() != DEFAULT_SOURCE.resolve():
        parts.append(f"--source {args.source}")
    if Path(args.out).resolve() != DEFAULT_OUT.resolve():
        parts.append(f"--out {args.out}")
    parts += [
        f"--seed {args.seed}", f"--sst2-train-rows {args.sst2_train_rows}",
        f"--squad-train-bytes {args.squad_train_bytes}", f"--squad-dev-questions {args.squad_dev_questions}",
        f"--squad-dev-bytes {args.squad_dev_bytes}", f"--wikitext-bytes {args.wikitext_bytes}",
    ]
    return " ".join(parts)


def readme(facts: dict, args) -> str:
    f = facts
    size = {rel: f"{v['bytes']:,} bytes" for rel, v in f.items()}
    task_kb = {t: sum(v["bytes"] for k, v in f.items() if k.startswith(t + "/")) / 1000 for t in ("sst2", "squad", "wikitext-2")}
    tr, va = f["sst2/train.tsv"], f["sst2/validation.tsv"]
    sq_t, sq_d = f["squad/xquad-en-train.json"], f["squad/dev-subset-v2.0.json"]
    wv, wt = f["wikitext-2/valid.txt"], f["wikitext-2/test.txt"]
    return f"""# Embedded offline samples

Small samples of public data sets, shipped inside the package so that the app's
Quick start and the command line run on a machine with no data folder and no
network (`hub/samples.py` picks them when `../shared/data` or `$HUB_DATA_DIR`
lacks a task's files). The layout mirrors the full data folder, so
`--data-dir hub/samples` works. They are for trying the tool, not for reporting
results: scores on a sample are not comparable with published numbers.

Made by `scripts/make_samples.py` from the offline copies in `../shared/data`,
with this exact command (run from the repository root):

```bash
{command_line(args)}
```

Random seed: **{args.seed}** (Python's `random.Random(seed).sample`, SST-2 train only;
every other file is a deterministic head of its source). Rerunning the command
rewrites identical files.

| file | content | size |
|---|---|---|
| `sst2/train.tsv` | {tr['rows']:,} of {tr['of']:,} SST-2 train rows, drawn at random without replacement ({tr['positive']:,} positive, {tr['negative']:,} negative), in the drawn order: any prefix is also a random sample | {size['sst2/train.tsv']} |
| `sst2/validation.tsv` | all {va['rows']:,} SST-2 validation rows, byte for byte | {size['sst2/validation.tsv']} |
| `squad/xquad-en-train.json` | the first {sq_t['articles']} of {sq_t['of_articles']} articles of `xquad-en-train.json` (SQuAD v1.1 format), {sq_t['questions']:,} of {sq_t['of']:,} questions: as many whole articles as fit {args.squad_train_bytes:,} bytes | {size['squad/xquad-en-train.json']} |
| `squad/dev-subset-v2.0.json` | SQuAD 2.0 format: the leading {sq_d['paragraphs']} paragraphs of the {sq_d['articles']} dev articles (each until it holds at least {-(-args.squad_dev_questions // sq_d['articles'])} questions), {sq_d['questions']:,} of {sq_d['of']:,} questions, {sq_d['answerable']:,} answerable | {size['squad/dev-subset-v2.0.json']} |
| `wikitext-2/valid.txt` | the first {wv['articles']} whole articles of the validation split, {wv['lines']:,} of {wv['of']:,} lines (at most {args.wikitext_bytes:,} bytes) | {size['wikitext-2/valid.txt']} |
| `wikitext-2/test.txt` | the first {wt['articles']} whole articles of the test split, {wt['lines']:,} of {wt['of']:,} lines (at most {args.wikitext_bytes:,} bytes) | {size['wikitext-2/test.txt']} |

Per task: sst2 {task_kb['sst2']:.0f} kB, squad {task_kb['squad']:.0f} kB, wikitext-2 {task_kb['wikitext-2']:.0f} kB
(each under 1 MB; the script checks it).

Formats are the sources' own: SST-2 is tab-separated with a `sentence\\tlabel`
header and no quoting (quotes are part of the text; label 0 = negative,
1 = positive); the SQuAD files are the SQuAD JSON (`data` → `paragraphs` →
`qas`); WikiText is the tokenised release (spaces around punctuation, rare
words as `<unk>`).

## Sources and licences

* **SST-2**: the Stanford Sentiment Treebank, Richard Socher, Alex Perelygin,
  Jean Wu, Jason Chuang, Christopher D. Manning, Andrew Ng and Christopher Potts,
  "Recursive Deep Models for Semantic Compositionality Over a Sentiment
  Treebank", EMNLP 2013 (https://nlp.stanford.edu/sentiment/), in its binary
  form as packaged by the GLUE benchmark (Wang et al., "GLUE: A Multi-Task
  Benchmark and Analysis Platform for Natural Language Understanding", ICLR
  2019, https://gluebenchmark.com/). Licence: GLUE adds no licence of its own;
  it states that its tasks are built on existing data sets and refers users to
  the original licences accompanying each one. The Stanford Sentiment Treebank
  is distributed publicly for research without a stated licence (the Hub's
  `nyu-mll/glue` card lists its licence as "other"). Cite both papers when you
  use it.
* **SQuAD / XQuAD**: `dev-subset-v2.0.json` is from SQuAD 2.0 (Pranav Rajpurkar,
  Robin Jia and Percy Liang, "Know What You Don't Know: Unanswerable Questions
  for SQuAD", ACL 2018); `xquad-en-train.json` is the English XQuAD (Mikel
  Artetxe, Sebastian Ruder and Dani Yogatama, "On the Cross-lingual
  Transferability of Monolingual Representations", ACL 2020), drawn from the
  SQuAD v1.1 dev set (Rajpurkar et al., "SQuAD: 100,000+ Questions for Machine
  Comprehension of Text", EMNLP 2016). Licence: **CC BY-SA 4.0**
  (https://creativecommons.org/licenses/by-sa/4.0/); the passages are from
  Wikipedia. These samples are shared under the same licence; the changes are
  the selection of articles and paragraphs described above.
* **WikiText-2**: Stephen Merity, Caiming Xiong, James Bradbury and Richard
  Socher, "Pointer Sentinel Mixture Models", 2016 (arXiv:1609.07843), text of
  Wikipedia Good and Featured articles. Licence: **CC BY-SA 3.0**
  (https://creativecommons.org/licenses/by-sa/3.0/). These samples are shared
  under the same licence; the change is the truncation to the leading articles.
"""


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    p.add_argument("--source", default=str(DEFAULT_SOURCE), help="the full data folder (read-only)")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="where to write the samples")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--sst2-train-rows", type=int, default=4000)
    p.add_argument("--squad-train-bytes", type=int, default=300_000)
    p.add_argument("--squad-dev-questions", type=int, default=300)
    p.add_argument("--squad-dev-bytes", type=int, default=300_000)
    p.add_argument("--wikitext-bytes", type=int, default=300_000)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if not (Path(args.source) / "sst2" / "train.tsv").is_file():
        print(f"error: no data folder at {args.source} (need sst2/, squad/, wikitext-2/)", file=sys.stderr)
        return 2
    facts = build(args)
    write_text(Path(args.out) / "README.md", readme(facts, args))
    for rel, v in sorted(facts.items()):
        print(f"{rel:32s} {v['bytes']:>9,} bytes  " + ", ".join(f"{k}={x}" for k, x in v.items() if k != "bytes"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
