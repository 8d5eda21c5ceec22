"""Word-level corpora: the three file layouts, vocabulary and <unk>, the built-in demo-text, batching, bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gdas_cli import GdasError
from gdas_cli.corpus import (
    DEMO, EOS, UNK, batchify, corpus_from_lines, demo_corpus, demo_lines, get_batch, load_corpus, write_demo_corpus,
)

TEXT = {"train": ["the cat sat", "the dog sat down", ""], "valid": ["the cat ran"], "test": ["a dog sat"]}


def write_splits(folder: Path, pattern: str, texts: dict[str, list[str]] = TEXT) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for split, lines in texts.items():
        (folder / pattern.format(split=split)).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


@pytest.mark.parametrize("pattern", ["{split}.txt", "ptb.{split}.txt", "wiki.{split}.tokens"])
def test_each_usual_layout_loads_the_same_corpus(tmp_path: Path, pattern: str) -> None:
    corpus = load_corpus("ptb", write_splits(tmp_path / "data", pattern))
    words = corpus.vocab.words
    # vocabulary: train words in order of first appearance, <eos> after each line (blank lines too)
    assert words == ("the", "cat", "sat", EOS, "dog", "down", UNK)
    assert corpus.train.tolist() == [0, 1, 2, 3, 0, 4, 2, 5, 3, 3]
    # valid/test words unseen in train become <unk>
    assert [words[i] for i in corpus.valid.tolist()] == ["the", "cat", UNK, EOS]
    assert [words[i] for i in corpus.test.tolist()] == [UNK, "dog", "sat", EOS]


def test_existing_unk_is_reused_and_corpus_fingerprint_is_stable(tmp_path: Path) -> None:
    texts = {"train": ["a <unk> b"], "valid": ["a zzz"], "test": ["b"]}
    first = load_corpus("wt2", write_splits(tmp_path / "a", "wiki.{split}.tokens", texts))
    assert len(first.vocab) == 4 and first.valid.tolist() == [0, 1, 3]
    again = load_corpus("wt2", write_splits(tmp_path / "b", "{split}.txt", texts))
    assert first.fingerprint() == again.fingerprint()
    changed = load_corpus("wt2", write_splits(tmp_path / "c", "{split}.txt", {**texts, "test": ["a"]}))
    assert changed.fingerprint() != first.fingerprint()


def test_missing_folder_missing_split_and_missing_data_dir_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(GdasError, match="no such directory"):
        load_corpus("ptb", tmp_path / "nope")
    folder = write_splits(tmp_path / "partial", "ptb.{split}.txt")
    (folder / "ptb.test.txt").unlink()
    with pytest.raises(GdasError, match=r"no test split \(looked for test.txt, ptb.test.txt, wiki.test.tokens\)"):
        load_corpus("ptb", folder)
    with pytest.raises(GdasError, match="--data-dir is required"):
        load_corpus("wt2", None)
    with pytest.raises(GdasError, match="unknown corpus"):
        load_corpus("imdb", folder)


@pytest.mark.parametrize("content", ["", "\n\n  \n"])
def test_empty_split_file_is_an_error_naming_the_file(tmp_path: Path, content: str) -> None:
    folder = write_splits(tmp_path / "data", "{split}.txt")
    (folder / "valid.txt").write_text(content, encoding="utf-8")
    with pytest.raises(GdasError) as err:
        load_corpus("ptb", folder)
    message = str(err.value)
    assert "valid.txt" in message and "empty" in message and "\n" not in message


def test_unreadable_file_is_an_error(tmp_path: Path) -> None:
    folder = write_splits(tmp_path / "data", "{split}.txt")
    (folder / "train.txt").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(GdasError, match="cannot read corpus file"):
        load_corpus("ptb", folder)


def test_demo_text_is_real_deterministic_and_ptb_shaped() -> None:
    corpus = load_corpus(DEMO)
    assert corpus is demo_corpus()  # built once per process
    lines = demo_lines()
    assert lines == demo_lines()
    assert len(corpus.vocab) == 2000 + 2  # the 2,000 most frequent train words, <unk>, <eos>
    n_train, n_valid, n_test = (len(lines[s]) for s in ("train", "valid", "test"))
    assert abs(n_valid / (n_train + n_valid + n_test) - 0.1) < 0.01 and abs(n_test - n_valid) <= 10
    assert corpus.train.numel() > 25_000 and corpus.valid.numel() > 2_500 and corpus.test.numel() > 2_500
    text = " ".join(lines["train"])
    words = text.split()
    assert all(w.replace("N", "") == w.replace("N", "").lower() for w in words)  # lower case; digit runs -> N
    assert "N" in words
    assert not any(ch.isdigit() for ch in text)
    assert " the " in text and " statement " in text  # real English about Python
    unk = corpus.vocab.index(UNK)
    assert 0 < (corpus.train == unk).float().mean().item() < 0.05


def test_demo_text_written_as_files_loads_identically(tmp_path: Path) -> None:
    write_demo_corpus(tmp_path / "demo")
    from_files = load_corpus("ptb", tmp_path / "demo")
    built = demo_corpus()
    assert from_files.vocab.words == built.vocab.words
    assert all(torch.equal(from_files.split(s), built.split(s)) for s in ("train", "valid", "test"))


def test_batchify_makes_contiguous_columns_and_get_batch_shifts_targets() -> None:
    data = torch.arange(23)
    batched = batchify(data, 4)
    assert batched.shape == (5, 4)
    assert batched[:, 1].tolist() == [5, 6, 7, 8, 9]
    inputs, targets = get_batch(batched, 3, 35)  # clipped to the rows left
    assert inputs.tolist() == [[3, 8, 13, 18]]
    assert targets.tolist() == [4, 9, 14, 19]
    with pytest.raises(GdasError, match="--batch-size: 20 is too large"):
        batchify(data, 20)


def test_corpus_split_name_is_checked() -> None:
    corpus = corpus_from_lines("x", {"train": ["a b"], "valid": ["a"], "test": ["b"]}, "mem")
    with pytest.raises(GdasError, match="--split"):
        corpus.split("dev")
