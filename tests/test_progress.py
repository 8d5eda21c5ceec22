"""Progress bars: drawn on a terminal only, never inside quiet(), and the loop sees every item unchanged."""

import pytest
from rich.console import Console

from gdas_cli.progress import quiet, track


@pytest.fixture
def terminal(monkeypatch):
    monkeypatch.setattr(Console, "is_terminal", property(lambda self: True))


def test_not_a_terminal_prints_nothing(capsys):
    assert list(track(range(5), "evaluate", total=5)) == [0, 1, 2, 3, 4]
    assert capsys.readouterr() == ("", "")


def test_a_terminal_shows_the_bar(terminal, capsys):
    assert list(track(range(3), "evaluate", total=3)) == [0, 1, 2]
    assert "evaluate" in capsys.readouterr().err


def test_quiet_wins_and_nests(terminal, capsys):
    with quiet():
        with quiet(False):  # an inner block cannot turn bars back on
            assert list(track(iter("ab"), "test")) == ["a", "b"]
    assert capsys.readouterr() == ("", "")
    with quiet(False):
        list(track(range(2), "valid", total=2))
    assert "valid" in capsys.readouterr().err


def test_reading_a_corpus_shows_a_bar(terminal, capsys):
    from gdas_cli.corpus import build_vocabulary, encode

    lines = ["the cat sat", "on the mat"] * 50
    ids, _ = encode(lines, build_vocabulary(lines), "tiny corpus")
    assert ids.numel() == 400  # 3 words and the end of line, 100 lines
    assert "read tiny corpus" in capsys.readouterr().err
