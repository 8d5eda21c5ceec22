"""The Hugging Face Hub, offline: publish, fetch, evaluate and load by tag, branch and commit; the
cache without a network; and every bad-input path as one clear line.

The server is a protocol fixture: tests/hub_server.py is a loopback HTTP server (started by the
`loopback_hub` fixture in conftest.py, which points HF_ENDPOINT at it before huggingface_hub is
imported) that speaks the Hub's HTTP protocol with in-memory repos. The client is real: every
request below goes through huggingface_hub's own code (HfApi, hf_hub_download, ModelHubMixin, the
cache), and offline behaviour is checked in subprocesses started with HF_HUB_OFFLINE=1.
"""

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import huggingface_hub
import pytest
import torch
from huggingface_hub import HfApi, ModelCard, constants
from packaging.specifiers import SpecifierSet
from packaging.version import Version
from typer.testing import CliRunner

from gdas_cli import GdasError, create_model, list_models, load_genotype
from gdas_cli.cli import app
from gdas_cli.files import sha256_file
from gdas_cli.hub import HubNetwork
from gdas_cli.published import GdasNetwork
from gdas_cli.weights import load_network
from cli_helpers import assert_one_line_error

ROOT = Path(__file__).resolve().parent.parent
REPO = "test-org/tiny-gdas"
runner = CliRunner()

pytestmark = pytest.mark.usefixtures("loopback_hub")


def run(*args):
    return runner.invoke(app, [str(a) for a in args])




def logits(model, seed=0):
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return model.eval()(x)


@pytest.fixture
def token(monkeypatch, loopback_hub):
    from hub_server import TOKENS

    monkeypatch.setenv("HF_TOKEN", next(iter(TOKENS)))


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    """An empty Hub cache for this test (huggingface_hub reads HF_HUB_CACHE at call time)."""
    cache = tmp_path / "hub-cache"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


@pytest.fixture(scope="module")
def published(loopback_hub, tiny_checkpoint, tmp_path_factory):
    """Two versions of one repo, pushed with `gdas export` as a user would: v1 (gdas_frc) and v2 (gdas)."""
    from hub_server import TOKENS

    versions = {"v1": tiny_checkpoint("gdas_frc", 0), "v2": tiny_checkpoint("gdas", 1)}
    commits = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_TOKEN", next(iter(TOKENS)))
        for tag, weights in versions.items():
            out = tmp_path_factory.mktemp(f"export-{tag}") / "folder"
            result = run("export", weights, "-o", out, "--push-to-hub", REPO, "--tag", tag, "--dataset", "digits", "--json")
            assert result.exit_code == 0, result.output
            commits[tag] = json.loads(result.stdout)["push"]["commit"]
    return {"weights": versions, "commits": commits}


def test_client_is_the_pinned_version():
    pyproject = (ROOT / "pyproject.toml").read_text()
    spec = next(line for line in pyproject.splitlines() if line.strip().startswith('"huggingface-hub'))
    assert Version(huggingface_hub.__version__) in SpecifierSet(spec.split('"')[1][len("huggingface-hub"):])
    assert constants.ENDPOINT.startswith("http://127.0.0.1:")  # set by conftest before the import


def test_push_makes_one_tagged_commit_per_version(published, loopback_hub):
    repo = loopback_hub.state.repos[REPO]
    assert repo.tags == published["commits"]
    assert len(repo.commits) == 3  # the repo's initial commit, then one commit per export
    refs = HfApi().list_repo_refs(REPO)
    assert {t.name: t.target_commit for t in refs.tags} == published["commits"]
    assert refs.branches[0].target_commit == published["commits"]["v2"]
    files = set(HfApi().list_repo_files(REPO, revision="v1"))
    assert {"config.json", "model.safetensors", "genotype.json", "README.md", "cell.png"} <= files
    card = ModelCard.load(huggingface_hub.hf_hub_download(REPO, "README.md", revision="v1"))
    assert card.data.library_name == "gdas-cli" and "gdas" in card.data.tags
    assert f"gdas eval --from-hub {REPO}@v1" in card.text


def test_create_model_and_genotype_from_each_tag(published, fresh_cache):
    for tag, genotype in (("v1", "gdas_frc@1.0.0"), ("v2", "gdas@1.0.0")):
        model = create_model(f"hf-hub:{REPO}@{tag}", pretrained=True)
        assert isinstance(model, GdasNetwork) and model.training  # timm returns pretrained models in train mode
        assert model.genotype.ref == genotype
        assert torch.equal(logits(model), logits(load_network(published["weights"][tag])))
        assert load_genotype(f"hf-hub:{REPO}@{tag}").ref == genotype
    assert load_genotype(f"hf-hub:{REPO}").ref == "gdas@1.0.0"  # main: the latest push


def test_mixin_from_pretrained_and_push_to_hub(published, fresh_cache, token):
    via_mixin = HubNetwork.from_pretrained(REPO, revision="v1")
    assert torch.equal(logits(via_mixin), logits(load_network(published["weights"]["v1"])))
    via_mixin.push_to_hub("test-org/mixin-push")  # the mixin's own upload path writes our format
    again = create_model("hf-hub:test-org/mixin-push", pretrained=True)
    assert torch.equal(logits(again), logits(via_mixin))


def test_download_by_commit(published, fresh_cache):
    commit = published["commits"]["v1"]
    model = create_model(f"hf-hub:{REPO}@{commit}", pretrained=True)
    assert torch.equal(logits(model), logits(load_network(published["weights"]["v1"])))
    snapshot = fresh_cache / "models--test-org--tiny-gdas" / "snapshots" / commit
    assert sorted(p.name for p in snapshot.iterdir()) == ["config.json", "genotype.json", "model.safetensors"]


def test_create_model_options_on_a_hub_model(published, fresh_cache):
    untrained = create_model(f"hf-hub:{REPO}@v1", C=16)
    assert untrained.genotype.ref == "gdas_frc@1.0.0" and untrained.args.C == 16 and untrained.training
    new_head = create_model(f"hf-hub:{REPO}@v1", pretrained=True, num_classes=3)
    assert new_head.args.num_classes == 3 and logits(new_head).shape == (4, 3)
    kept = create_model(f"hf-hub:{REPO}@v1", pretrained=True).state_dict()
    changed = [k for k, v in new_head.state_dict().items() if k not in kept or not torch.equal(v, kept[k])]
    assert changed and all(k.startswith(("classifier.", "aux_head.")) for k in changed)  # only the classifiers
    with pytest.raises(GdasError, match="C cannot change with pretrained weights"):
        create_model(f"hf-hub:{REPO}@v1", pretrained=True, C=16)


@pytest.mark.parametrize("tag", ["v1", "v2"])
def test_cli_eval_from_hub(published, fresh_cache, tag):
    pytest.importorskip("sklearn")
    result = run("eval", "--from-hub", f"{REPO}@{tag}", "--limit-batches", "1", "--device", "cpu", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["commit"] == published["commits"][tag] and summary["dataset"] == "digits"
    assert summary["genotype"] == {"v1": "gdas_frc@1.0.0", "v2": "gdas@1.0.0"}[tag]
    assert summary["checkpoint"] == f"hf-hub:{REPO}@{tag}/model.safetensors" and 0 <= summary["test_top1"] <= 100


def test_hub_genotype_refs_in_the_cli(published, fresh_cache, tmp_path):
    result = run("genotypes", "show", f"hf-hub:{REPO}@v1")
    assert result.exit_code == 0, result.output
    assert "node 3 = skip_connect(c_{k-2}) + sep_conv_3x3(node 2)" in result.stdout
    result = run("export", f"hf-hub:{REPO}@v2", "-o", tmp_path / "cell")  # re-publish a Hub genotype alone
    assert result.exit_code == 0, result.output
    assert load_genotype(str(tmp_path / "cell" / "genotype.json")).ref == "gdas@1.0.0"
    if importlib.util.find_spec("sklearn") is not None:
        result = run("train", "digits", "--genotype", f"hf-hub:{REPO}@v1", "-C", "8", "--layers", "3", "--epochs", "1",
                     "--limit-train-batches", "1", "--limit-eval-batches", "1", "--run-dir", tmp_path / "run", "--quiet")
        assert result.exit_code == 0, result.output
        config = json.loads((tmp_path / "run" / "config.json").read_text())
        assert config["task"]["genotype_ref"] == "gdas_frc@1.0.0"


GDAS = ("-c", "import sys; from gdas_cli.cli import main; sys.argv[0] = 'gdas'; main()")  # the console script


def _offline(env_cache, *argv, endpoint=None):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(env_cache), "OMP_NUM_THREADS": "1"}
    env.pop("HF_TOKEN", None)
    if endpoint:
        env["HF_ENDPOINT"] = endpoint
    return subprocess.run([sys.executable, *argv], env=env, capture_output=True, text=True, timeout=120)


def test_offline_reload_from_the_cache(published, fresh_cache, loopback_hub):
    for tag in ("v1", "v2"):
        create_model(f"hf-hub:{REPO}@{tag}", pretrained=True)  # online once: fills the cache
    before = len(loopback_hub.state.requests)
    code = (
        "import torch, gdas_cli;"
        f"m = gdas_cli.create_model('hf-hub:{REPO}@v1', pretrained=True).eval();"
        "x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0));"
        "print(m.genotype.ref, m(x).sum().item());"
        f"print(gdas_cli.load_genotype('hf-hub:{REPO}@v2').ref)"
    )
    result = _offline(fresh_cache, "-c", code)
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.split("\n")[:2]
    expected = logits(load_network(published["weights"]["v1"])).sum().item()
    assert first.split()[0] == "gdas_frc@1.0.0" and float(first.split()[1]) == pytest.approx(expected, rel=1e-5)
    assert second == "gdas@1.0.0"
    if importlib.util.find_spec("sklearn") is not None:  # the digits data set ships with scikit-learn
        cli = _offline(fresh_cache, *GDAS, "eval", "--from-hub", f"{REPO}@v1", "--limit-batches", "1", "--json")
        assert cli.returncode == 0, cli.stderr
        assert json.loads(cli.stdout)["commit"] == published["commits"]["v1"]
    assert len(loopback_hub.state.requests) == before  # nothing reached the server


def test_offline_with_nothing_cached(tmp_path):
    result = _offline(tmp_path / "empty-cache", *GDAS, "eval", "--from-hub", f"{REPO}@v1")
    assert result.returncode == 1, result.stderr  # the reference is fine; this machine's cache lacks it
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and f"{REPO}@v1" in lines[0] and "HF_HUB_OFFLINE" in lines[0], result.stderr
    assert not (tmp_path / "empty-cache").exists() or not list((tmp_path / "empty-cache").rglob("*.safetensors"))


# --- bad repos: built on the server directly, as a broken or hostile upload would leave them ---


@pytest.fixture(scope="module")
def good_files(published, tmp_path_factory):
    """The files of v1, as bytes, to corrupt one at a time."""
    cache = tmp_path_factory.mktemp("good-files-cache")
    folder = Path(huggingface_hub.snapshot_download(REPO, revision="v1", cache_dir=str(cache)))
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def _bad_repo(hub, name, files):
    hub.state.put_files(f"test-org/{name}", files, tag="v1")
    return f"test-org/{name}@v1"


def test_unknown_repo_and_revision(published, fresh_cache):
    assert_one_line_error(run("genotypes", "show", "hf-hub:test-org/does-not-exist@v1"), "test-org/does-not-exist@v1", "not found")
    assert_one_line_error(run("eval", "--from-hub", f"{REPO}@v9"), f"{REPO}@v9", "revision 'v9' not found")
    with pytest.raises(GdasError, match="revision 'nope' not found"):
        create_model(f"hf-hub:{REPO}@nope", pretrained=True)


def test_repo_without_genotype_or_model(loopback_hub, fresh_cache, good_files):
    ref = _bad_repo(loopback_hub, "readme-only", {"README.md": good_files["README.md"]})
    assert_one_line_error(run("genotypes", "show", f"hf-hub:{ref}"), ref, "has no genotype.json")
    assert_one_line_error(run("eval", "--from-hub", ref), ref, "no config.json")
    ref = _bad_repo(loopback_hub, "genotype-only", {"genotype.json": good_files["genotype.json"]})
    assert load_genotype(f"hf-hub:{ref}").ref == "gdas_frc@1.0.0"
    with pytest.raises(GdasError, match="a genotype-only repo is used as --genotype"):
        create_model(f"hf-hub:{ref}", pretrained=True)


def test_pickle_weights_are_never_loaded(loopback_hub, fresh_cache, good_files, monkeypatch):
    files = {k: v for k, v in good_files.items() if k != "model.safetensors"}
    ref = _bad_repo(loopback_hub, "pickle-only", files | {"pytorch_model.bin": b"\x80\x04not-even-a-pickle"})
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load must never be called"))
    with pytest.raises(GdasError, match=f"hf-hub:{ref}.*has no model.safetensors"):
        create_model(f"hf-hub:{ref}", pretrained=True)
    with pytest.raises(GdasError, match="has no model.safetensors"):
        HubNetwork.from_pretrained(ref.split("@")[0], revision="v1")  # the mixin would fall back to the pickle


def _without_sha(config_bytes):
    config = json.loads(config_bytes)
    config.pop("weights")
    return json.dumps(config).encode()


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_corrupted_or_truncated_weights(loopback_hub, fresh_cache, good_files, damage):
    weights = good_files["model.safetensors"]
    broken = weights[: len(weights) // 2] if damage == "truncated" else b"\x00" * 64 + weights[64:]
    ref = _bad_repo(loopback_hub, f"{damage}-sha", good_files | {"model.safetensors": broken})
    line = assert_one_line_error(run("eval", "--from-hub", ref), ref)
    assert "sha256" in line and "does not match config.json" in line
    # a config without the hash is refused before the weights are read: nothing unverified loads
    ref = _bad_repo(loopback_hub, f"{damage}-nosha", good_files | {
        "model.safetensors": broken, "config.json": _without_sha(good_files["config.json"])})
    with pytest.raises(GdasError) as info:
        create_model(f"hf-hub:{ref}", pretrained=True)
    assert str(info.value).startswith(f"hf-hub:{ref}/config.json: no weights.sha256")
    assert str(fresh_cache) not in str(info.value)


def test_weights_of_another_genotype(loopback_hub, fresh_cache, good_files, published):
    other = published["weights"]["v2"].read_bytes()  # gdas weights under a gdas_frc config
    config = json.loads(good_files["config.json"])
    config["weights"]["sha256"] = sha256_file(published["weights"]["v2"])
    ref = _bad_repo(loopback_hub, "mismatch", good_files | {
        "model.safetensors": other, "config.json": json.dumps(config).encode()})
    line = assert_one_line_error(run("eval", "--from-hub", ref), ref)
    assert "saved for genotype gdas@1.0.0" in line and "gdas_frc@1.0.0" in line
    ref = _bad_repo(loopback_hub, "genotype-mismatch", good_files | {
        "genotype.json": load_genotype("darts_v2").to_json().encode()})
    with pytest.raises(GdasError, match="describe different cells"):
        create_model(f"hf-hub:{ref}", pretrained=True)


def _zoo_entry(tmp_path, commit, sha):
    entry = json.loads((ROOT / "zoo" / "gdas_frc_cifar10.json").read_text())
    entry |= {"name": "tiny_frc_digits", "network": {"net": "cifar", "C": 8, "layers": 5, "num_classes": 10,
                                                     "auxiliary": True},
              "weights": {"repo_id": REPO, "revision": commit, "tag": "v1", "sha256": sha}}
    entry["metrics"] = {"top1_error": {"value": 50.0, "unit": "%", "source": "measured", "reference": "test"}}
    folder = tmp_path / "my-zoo"
    folder.mkdir(exist_ok=True)
    (folder / "tiny_frc_digits.json").write_text(json.dumps(entry))
    return folder


def test_pretrained_zoo_entry_and_sha256_mismatch(published, fresh_cache, good_files, tmp_path, monkeypatch):
    commit, weights = published["commits"]["v1"], published["weights"]["v1"]
    sha = hashlib.sha256(good_files["model.safetensors"]).hexdigest()  # of the published file
    monkeypatch.setenv("GDAS_ZOO_PATH", str(_zoo_entry(tmp_path, commit, sha)))
    assert "tiny_frc_digits" in list_models(pretrained=True)
    model = create_model("tiny_frc_digits", pretrained=True)
    assert torch.equal(logits(model), logits(load_network(weights)))

    monkeypatch.setenv("GDAS_ZOO_PATH", str(_zoo_entry(tmp_path, commit, "f" * 64)))
    with pytest.raises(GdasError, match=rf"hf-hub:{REPO}@{commit}/model.safetensors: sha256 .* does not match the zoo entry"):
        create_model("tiny_frc_digits", pretrained=True)


def test_push_without_a_token_writes_nothing(tiny_checkpoint, tmp_path, loopback_hub, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    out = tmp_path / "out"
    result = run("export", tiny_checkpoint(), "-o", out, "--push-to-hub", "test-org/no-token", "--tag", "v1")
    assert_one_line_error(result, "test-org/no-token@v1", "token")
    assert not out.exists() and "test-org/no-token" not in loopback_hub.state.repos


def test_push_with_a_taken_tag_writes_nothing(published, tiny_checkpoint, tmp_path, loopback_hub, token):
    commits = len(loopback_hub.state.repos[REPO].commits)
    out = tmp_path / "out"
    result = run("export", tiny_checkpoint(), "-o", out, "--push-to-hub", REPO, "--tag", "v1")
    assert_one_line_error(result, f"{REPO}@v1", "tag 'v1' already exists")
    assert not out.exists() and len(loopback_hub.state.repos[REPO].commits) == commits
    assert_one_line_error(run("export", tiny_checkpoint(), "--push-to-hub", "bad repo id"), "org/name")


def test_private_repo_and_genotype_only_push(tmp_path, fresh_cache, loopback_hub, token, monkeypatch):
    result = run("export", "gdas_frc", "--push-to-hub", "test-org/private-cell", "--tag", "v1", "--private")
    assert result.exit_code == 0, result.output
    assert "gdas genotypes show hf-hub:test-org/private-cell@v1" in result.stdout
    assert loopback_hub.state.repos["test-org/private-cell"].private
    assert load_genotype("hf-hub:test-org/private-cell@v1").ref == "gdas_frc@1.0.0"
    monkeypatch.delenv("HF_TOKEN")
    # (huggingface_hub serves files it already cached even when the Hub now says no: use an empty cache)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "no-token-cache"))
    assert_one_line_error(run("genotypes", "show", "hf-hub:test-org/private-cell@v1"), "private-cell@v1", "private")


def test_a_new_version_replaces_the_files_of_the_last(published, tiny_checkpoint, fresh_cache, token):
    result = run("export", "darts_v2", "--push-to-hub", "test-org/replace", "--tag", "v1")
    assert result.exit_code == 0, result.output
    result = run("export", tiny_checkpoint(), "--push-to-hub", "test-org/replace", "--tag", "v2")
    assert result.exit_code == 0, result.output
    result = run("export", "gdas", "--push-to-hub", "test-org/replace", "--tag", "v3")
    assert result.exit_code == 0, result.output
    files = set(HfApi().list_repo_files("test-org/replace", revision="v3"))
    assert files == {".gitattributes", "README.md", "cell.png", "config.json", "genotype.json"}  # v2's weights are gone
    config = json.loads(open(huggingface_hub.hf_hub_download("test-org/replace", "config.json", revision="v3")).read())
    assert config["network"] is None and config["pretrained_cfg"]["source"] == "genotype gdas@1.0.0"
    with pytest.raises(GdasError, match="has no model.safetensors at this revision"):
        create_model("hf-hub:test-org/replace@v3", pretrained=True)
    with pytest.raises(GdasError, match="a genotype published alone"):
        create_model("hf-hub:test-org/replace@v3")
    assert create_model("hf-hub:test-org/replace@v2", pretrained=True).genotype.ref == "gdas_frc@1.0.0"


def test_failed_downloads_leave_no_partial_files(published, fresh_cache, good_files, loopback_hub):
    weights = good_files["model.safetensors"]
    broken = _bad_repo(loopback_hub, "broken", good_files | {"model.safetensors": weights[:100]})
    for spec in ("test-org/does-not-exist@v1", f"{REPO}@v9", broken):
        with pytest.raises(GdasError):
            create_model(f"hf-hub:{spec}", pretrained=True)
    assert [p for p in fresh_cache.rglob("*") if p.name.endswith(".incomplete")] == []
    assert not (fresh_cache / "models--test-org--does-not-exist" / "snapshots").exists()


def _closed_port() -> int:
    import socket

    with socket.socket() as probe:  # bound, then closed: nothing listens there
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _online(env_cache, code, endpoint, **env_vars):
    """Run `code` (which prints the seconds a Hub call took) against `endpoint`, HF_HUB_OFFLINE unset."""
    env = {**os.environ, "HF_HUB_CACHE": str(env_cache), "HF_ENDPOINT": endpoint, "OMP_NUM_THREADS": "1", **env_vars}
    for name in ("HF_HUB_OFFLINE", "HF_TOKEN"):
        env.pop(name, None)
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=180)


# imports first, so only the Hub call is timed; prints "ok <seconds>" or the one-line error and its seconds
TIMED_LOAD = (
    "import time, gdas_cli.hub as hub\n"
    "from gdas_cli import GdasError, load_genotype\n"
    "start = time.perf_counter()\n"
    "try:\n"
    "    print('ok', load_genotype('hf-hub:{ref}').ref, time.perf_counter() - start)\n"
    "except GdasError as err:\n"
    "    print('error', time.perf_counter() - start); print(err)\n"
)


def test_unreachable_hub_fails_fast_and_names_the_cached_revision(published, fresh_cache):
    create_model(f"hf-hub:{REPO}@v1", pretrained=True)  # online once: v1 is cached, v2 is not
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    missing = _online(fresh_cache, TIMED_LOAD.format(ref=f"{REPO}@v2"), endpoint)
    status, seconds = missing.stdout.splitlines()[0].split()
    line = missing.stdout.splitlines()[1]
    assert status == "error" and float(seconds) < 5, missing.stdout + missing.stderr
    assert f"{REPO}@v2" in line and "HF_HUB_OFFLINE=1" in line and "v1 (commit " in line, line
    assert published["commits"]["v1"][:12] in line
    cached = _online(fresh_cache, TIMED_LOAD.format(ref=f"{REPO}@v1"), endpoint)
    status, ref, seconds = cached.stdout.split()
    assert (status, ref) == ("ok", "gdas_frc@1.0.0") and float(seconds) < 5, cached.stdout + cached.stderr


def test_a_hub_that_never_answers_times_out(tmp_path):
    import socket

    with socket.socket() as silent:  # accepts connections (the backlog) and never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
        result = _online(tmp_path / "cache", TIMED_LOAD.format(ref=f"{REPO}@v1"), endpoint, HF_HUB_ETAG_TIMEOUT="1")
    status, seconds = result.stdout.splitlines()[0].split()
    line = result.stdout.splitlines()[1]
    assert status == "error" and float(seconds) < 5, result.stdout + result.stderr
    assert "within 1 s" in line and "nothing of it is cached" in line and "HF_HUB_OFFLINE=1" in line, line


def test_shipped_digits_weights_round_trip_through_the_hub(fresh_cache, token):
    weights = ROOT / "zoo" / "weights" / "gdas_frc_digits" / "model.safetensors"
    result = run("export", weights, "--push-to-hub", "test-org/gdas-frc-digits", "--tag", "v1", "--license", "mit")
    assert result.exit_code == 0, result.output
    shipped = create_model("gdas_frc_digits", pretrained=True)
    fetched = create_model("hf-hub:test-org/gdas-frc-digits@v1", pretrained=True)
    assert torch.equal(logits(fetched), logits(shipped))
    for key in ("mean", "std", "label_names", "dataset", "license", "num_classes", "input_size"):
        assert fetched.pretrained_cfg[key] == shipped.pretrained_cfg[key], key
