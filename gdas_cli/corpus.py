"""Word-level language-model corpora: PTB, WikiText-2, and the small built-in `demo-text`.

A corpus folder holds three splits as plain text, one sentence (or paragraph) per line, words
separated by spaces, in any of the usual namings:

    train.txt valid.txt test.txt          ptb.train.txt ptb.valid.txt ptb.test.txt
    wiki.train.tokens wiki.valid.tokens wiki.test.tokens

Every line becomes its words plus `<eos>` (blank lines too, as the AWD-LSTM/DARTS readers do, so
perplexities stay comparable with published numbers). The vocabulary is built from the train split
in order of first appearance; words of valid/test unseen in train map to `<unk>`.

`demo-text` is real English shipped with every CPython (`pydoc_data.topics`, the Python reference
topics) turned into the same layout: prose lines only, lower case, digit runs -> `N`, one sentence per
line, vocabulary capped at 2,000 words plus `<unk>`, blocks of 10 sentences split 8/1/1 into
train/valid/test. It is built in memory, deterministically, in well under a second.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import GdasError, os_error
from .progress import track

EOS = "<eos>"
UNK = "<unk>"
SPLITS = ("train", "valid", "test")
DEMO = "demo-text"
CORPORA = ("ptb", "wt2", DEMO)
DEMO_VOCAB = 2000
_LAYOUTS = ("{split}.txt", "ptb.{split}.txt", "wiki.{split}.tokens")


@dataclass(frozen=True)
class Vocabulary:
    """Index <-> word; `words[i]` is the word of index i."""

    words: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {w: i for i, w in enumerate(self.words)})

    def __len__(self) -> int:
        return len(self.words)

    def index(self, word: str) -> int | None:
        return self._index.get(word)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Corpus:
    """A tokenised corpus: each split is a 1-D LongTensor of word indices (with `<eos>` per line)."""

    name: str
    vocab: Vocabulary
    train: torch.Tensor
    valid: torch.Tensor
    test: torch.Tensor
    source: str

    def split(self, name: str) -> torch.Tensor:
        if name not in SPLITS:
            raise GdasError(f"--split: {name!r} must be one of {', '.join(SPLITS)}")
        return getattr(self, name)

    def fingerprint(self) -> str:
        """sha256 of the vocabulary and the three splits, recorded in run configs."""
        digest = hashlib.sha256("\n".join(self.vocab.words).encode())
        for split in SPLITS:
            digest.update(self.split(split).to(torch.int64).numpy().astype("<i8").tobytes())
        return digest.hexdigest()

    def summary(self) -> dict[str, object]:
        return {
            "corpus": self.name,
            "source": self.source,
            "vocab": len(self.vocab),
            **{f"{s}_tokens": int(self.split(s).numel()) for s in SPLITS},
            "sha256": self.fingerprint(),
        }


def line_words(line: str) -> list[str]:
    return line.split() + [EOS]


def build_vocabulary(train_lines: list[str]) -> Vocabulary:
    """Words of the train lines in order of first appearance (`<eos>` included)."""
    seen: dict[str, None] = {}
    for line in train_lines:
        for word in line_words(line):
            seen.setdefault(word)
    return Vocabulary(tuple(seen))


def encode(lines: list[str], vocab: Vocabulary, where: str) -> tuple[torch.Tensor, Vocabulary]:
    """Indices of every word of `lines`; unseen words become `<unk>` (added to the vocabulary if needed)."""
    ids: list[int] = []
    for line in track(lines, f"read {where}", total=len(lines)):
        for word in line_words(line):
            index = vocab.index(word)
            if index is None:
                unk = vocab.index(UNK)
                if unk is None:
                    vocab = Vocabulary(vocab.words + (UNK,))
                    unk = len(vocab.words) - 1
                index = unk
            ids.append(index)
    if not ids:
        raise GdasError(f"{where}: no text")
    return torch.tensor(ids, dtype=torch.long), vocab


def corpus_from_lines(
    name: str, lines: dict[str, list[str]], source: str, where: dict[str, str] | None = None
) -> Corpus:
    """Tokenise three splits of text lines; each empty split is an error naming its file."""
    where = where or {s: f"{source} {s} split" for s in SPLITS}
    for split in SPLITS:
        if not any(line.strip() for line in lines[split]):
            raise GdasError(f"{where[split]}: the {split} split is empty (no words)")
    vocab = build_vocabulary(lines["train"])
    train, vocab = encode(lines["train"], vocab, where["train"])
    valid, vocab = encode(lines["valid"], vocab, where["valid"])
    test, vocab = encode(lines["test"], vocab, where["test"])
    return Corpus(name, vocab, train, valid, test, source)


def find_split_files(data_dir: Path) -> dict[str, Path]:
    """The train/valid/test files of a corpus folder, in any of the usual namings."""
    if not data_dir.is_dir():
        raise GdasError(f"--data-dir {data_dir}: no such directory")
    found: dict[str, Path] = {}
    for split in SPLITS:
        candidates = [data_dir / layout.format(split=split) for layout in _LAYOUTS]
        present = [path for path in candidates if path.is_file()]
        if not present:
            names = ", ".join(path.name for path in candidates)
            raise GdasError(f"--data-dir {data_dir}: no {split} split (looked for {names})")
        found[split] = present[0]
    return found


def read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise os_error(err, f"{path}: cannot read corpus file") from None
    except UnicodeDecodeError as err:
        raise GdasError(f"{path}: cannot read corpus file ({err})") from None


def load_corpus(name: str, data_dir: str | Path | None = None) -> Corpus:
    """`ptb` or `wt2` from `data_dir`, or the built-in `demo-text` (which needs no folder)."""
    if name == DEMO:
        return demo_corpus()
    if name not in CORPORA:
        raise GdasError(f"{name!r}: unknown corpus; known: {', '.join(CORPORA)}")
    if data_dir is None:
        raise GdasError(f"{name}: --data-dir is required (a folder with the {name} train/valid/test text files)")
    files = find_split_files(Path(data_dir).expanduser())
    lines = {split: read_lines(path) for split, path in files.items()}
    return corpus_from_lines(name, lines, str(data_dir), {s: str(p) for s, p in files.items()})


# --- demo-text: CPython's pydoc topics as a PTB-style corpus -------------------------------------

_WORD_RE = re.compile(r"[a-z][a-z0-9]*(?:'[a-z]+)?|\d+")
_SENTENCE_END_RE = re.compile(r"(?<=[.!?])\s+")
_DIGITS_RE = re.compile(r"\d+")
_RULE_RE = re.compile(r"^[*=\-~^]{3,}$")


def _prose_paragraphs(text: str) -> list[str]:
    """Paragraphs of running text: indented blocks (code, grammar) and heading rules dropped."""
    paragraphs: list[str] = []
    current: list[str] = []
    for line in text.splitlines():
        if not line.strip() or line.startswith(" ") or _RULE_RE.match(line.strip()):
            if current:
                paragraphs.append(" ".join(current))
                current = []
            continue
        current.append(line.strip())
    if current:
        paragraphs.append(" ".join(current))
    return paragraphs


def _sentence_words(sentence: str) -> list[str]:
    return [_DIGITS_RE.sub("N", word) for word in _WORD_RE.findall(sentence.lower())]


def demo_sentences() -> list[list[str]]:
    """Every sentence of at least 3 words of the pydoc topics, topics in sorted order."""
    from pydoc_data.topics import topics  # part of every CPython installation

    sentences = []
    for key in sorted(topics):
        for paragraph in _prose_paragraphs(topics[key]):
            for sentence in _SENTENCE_END_RE.split(paragraph):
                words = _sentence_words(sentence)
                if len(words) >= 3:
                    sentences.append(words)
    return sentences


def demo_lines(vocab_size: int = DEMO_VOCAB) -> dict[str, list[str]]:
    """The demo corpus as text lines per split (what `ptb.{split}.txt` files would hold)."""
    sentences = demo_sentences()
    splits: dict[str, list[list[str]]] = {s: [] for s in SPLITS}
    for i, sentence in enumerate(sentences):
        block = (i // 10) % 10  # blocks of 10 consecutive sentences: 8 train, 1 valid, 1 test
        splits["valid" if block == 8 else "test" if block == 9 else "train"].append(sentence)
    counts = Counter(word for sentence in splits["train"] for word in sentence)
    kept = {word for word, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:vocab_size]}
    return {
        split: [" ".join(w if w in kept else UNK for w in s) for s in sentences_]
        for split, sentences_ in splits.items()
    }


def write_demo_corpus(folder: Path) -> dict[str, Path]:
    """Write the demo corpus as `ptb.{split}.txt` files (for inspection, or to test the file path)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, lines in demo_lines().items():
        paths[split] = folder / f"ptb.{split}.txt"
        paths[split].write_text("".join(f" {line} \n" for line in lines), encoding="utf-8")
    return paths


_DEMO_CACHE: dict[int, Corpus] = {}


def demo_corpus(vocab_size: int = DEMO_VOCAB) -> Corpus:
    if vocab_size not in _DEMO_CACHE:
        _DEMO_CACHE[vocab_size] = corpus_from_lines(DEMO, demo_lines(vocab_size), "pydoc_data.topics")
    return _DEMO_CACHE[vocab_size]


# --- batching (the usual LM layout: columns are independent streams) -----------------------------


def batchify(data: torch.Tensor, batch_size: int, option: str = "--batch-size") -> torch.Tensor:
    """(N,) -> (N // batch_size, batch_size): each column is one contiguous stream of the text.

    `option` names the batch size in the error when the split is too short for it."""
    rows = data.numel() // batch_size
    if rows < 2:
        raise GdasError(
            f"{option}: {batch_size} is too large for a split of {data.numel()} tokens (at most {data.numel() // 2})"
        )
    return data[: rows * batch_size].view(batch_size, rows).t().contiguous()


def get_batch(source: torch.Tensor, start: int, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs rows [start, start+L) and the next-word targets, L = min(seq_len, rows left - 1)."""
    length = min(seq_len, source.size(0) - 1 - start)
    return source[start : start + length], source[start + 1 : start + 1 + length].reshape(-1)
