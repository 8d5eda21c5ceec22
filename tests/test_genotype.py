"""Genotype format v1: every shipped file validates, round-trips, and resolves by name, name@version and path."""

import json

import pytest

from gdas_cli import GdasError, Genotype, load_genotype
from gdas_cli.genotype import FRC, SCHEMA_ID, SCHEMA_VERSION, data_dir, zoo_genotypes

ZOO = zoo_genotypes()
PAPER_NAMES = {
    "gdas", "gdas_frc", "gdas_n_fix_r", "frc_n_gdas_r", "gdas_rnn", "darts_v1", "darts_v2", "darts_v1_rnn",
    "darts_v2_rnn", "nasnet", "amoebanet", "pnasnet", "enas", "enas_rnn", "pdarts", "setn",
}


def test_zoo_has_every_published_cell():
    assert PAPER_NAMES <= {g.name for g in ZOO}


@pytest.mark.parametrize("genotype", ZOO, ids=lambda g: g.ref)
def test_zoo_entry_metadata(genotype):
    """Like torchvision's weights-metadata test: each file carries the fields users and tools rely on."""
    path = data_dir("genotypes") / f"{genotype.name}-{genotype.version}.json"
    raw = json.loads(path.read_text())
    assert raw["schema"] == SCHEMA_ID and raw["schema_version"] == SCHEMA_VERSION
    assert genotype.version == "1.0.0"
    assert genotype.provenance["source"] == "paper"
    assert genotype.provenance["paper"] and genotype.provenance["table"] and genotype.provenance["original_name"]
    assert Genotype.from_json(genotype.to_json()) == genotype
    assert path.read_text() == genotype.to_json(), "shipped files are in the canonical format"


def test_gdas_cells_match_the_paper_code():
    gdas, frc = load_genotype("gdas"), load_genotype("gdas_frc")
    assert [(e.op, e.input) for node in gdas.normal.nodes for e in node][:4] == [
        ("skip_connect", 0), ("skip_connect", 1), ("skip_connect", 0), ("sep_conv_5x5", 2)
    ]
    assert frc.reduce == FRC and frc.uses_frc and not gdas.uses_frc
    assert load_genotype("gdas_n_fix_r").normal == gdas.normal
    assert load_genotype("frc_n_gdas_r").reduce == gdas.reduce
    rnn = load_genotype("gdas_rnn")
    assert rnn.kind == "rnn" and rnn.recurrent.steps == 8 and rnn.recurrent.concat == tuple(range(1, 9))


def test_resolution_by_name_version_and_path(tmp_path):
    newest = load_genotype("gdas_frc")
    assert load_genotype("gdas_frc@1.0.0") == newest
    path = tmp_path / "mine.json"
    path.write_text(newest.to_json())
    assert load_genotype(str(path)) == newest
    assert load_genotype(path) == newest


def test_newest_version_wins(tmp_path, monkeypatch):
    folder = tmp_path / "genotypes"
    folder.mkdir()
    base = load_genotype("gdas").to_dict()
    for version in ("1.0.0", "1.10.0", "1.2.0"):
        (folder / f"gdas-{version}.json").write_text(json.dumps({**base, "version": version}))
    monkeypatch.setattr("gdas_cli.genotype.data_dir", lambda name: folder)
    assert load_genotype("gdas").version == "1.10.0"
    with pytest.raises(GdasError, match="no version 9.9.9"):
        load_genotype("gdas@9.9.9")


def _broken(**changes):
    data = load_genotype("gdas").to_dict()
    data.update(changes)
    return data


@pytest.mark.parametrize(
    "data, message",
    [
        (_broken(schema_version=2), "unsupported version 2"),
        (_broken(schema="other"), "schema"),
        (_broken(version="1.0"), "not a semantic version"),
        (_broken(kind="transformer"), "kind"),
        (_broken(normal={"nodes": [[["conv_9x9", 0], ["skip_connect", 1]]], "concat": [2]}), "unknown op 'conv_9x9'"),
        (_broken(normal={"nodes": [[["skip_connect", 5], ["skip_connect", 1]]], "concat": [2]}), "out of range 0..1"),
        (_broken(normal={"nodes": [], "concat": [2]}), "wrong number of nodes"),
        (_broken(normal={"nodes": [[["skip_connect", 0]]], "concat": [2]}), "2 [op, input] edge"),
        (_broken(normal={"nodes": [[["skip_connect", 0], ["skip_connect", 1]]], "concat": [2, 3]}), "concat"),
        (_broken(reduce="fixed"), "reduce"),
        (_broken(derive_rule="magic"), "derive_rule"),
        ([1, 2], "JSON object"),
    ],
)
def test_validation_names_source_and_problem(data, message):
    with pytest.raises(GdasError) as info:
        Genotype.from_dict(data, "cell.json")
    assert str(info.value).startswith("cell.json: ")
    assert message in str(info.value)


def test_rnn_genotype_validation():
    data = load_genotype("gdas_rnn").to_dict()
    data["recurrent"]["nodes"][0] = [["relu", 1]]
    with pytest.raises(GdasError, match="out of range 0..0"):
        Genotype.from_dict(data, "rnn.json")
    data = load_genotype("gdas_rnn").to_dict()
    data["recurrent"]["nodes"][2] = [["sep_conv_3x3", 0]]
    with pytest.raises(GdasError, match="unknown op 'sep_conv_3x3'"):
        Genotype.from_dict(data, "rnn.json")


def test_bad_json_and_missing_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(GdasError, match=r"bad.json: not valid JSON"):
        load_genotype(str(bad))
    with pytest.raises(GdasError, match="no such genotype file"):
        load_genotype(str(tmp_path / "missing.json"))
    with pytest.raises(GdasError, match="unknown genotype name 'nope'"):
        load_genotype("nope")
