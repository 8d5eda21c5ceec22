"""The engine with a tiny synthetic task: records, checkpoints, Ctrl-C and exact resume, batch sources."""

from __future__ import annotations

import argparse
import json
import os
import signal
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from gdas_cli.checkpoint import find_checkpoint, load_state, write_checkpoint
from gdas_cli.data import Augment, LoaderBatches, TensorBatches, TensorImages, epoch_order, split_indices
from gdas_cli.engine import EngineConfig, Observer, ResumeMode, RunInterrupted, RunStart, Runtime, Task, resumes, run_task
from gdas_cli.engine.resume import resume_mode
from gdas_cli.errors import GdasError
from gdas_cli.rundir import checkpoint_digests


def synthetic_images(n: int = 48, seed: int = 0) -> TensorImages:
    g = torch.Generator().manual_seed(seed)
    return TensorImages(torch.randint(0, 256, (n, 3, 8, 8), generator=g, dtype=torch.uint8),
                        torch.randint(0, 4, (n,), generator=g))


class TinyTask(Task):
    """A conv net with dropout (so RNG state matters) on 8x8 synthetic images, SGD with a cosine schedule."""

    kind = "tiny"
    best_metric = ("test_acc", "max")

    def __init__(self, interrupt_at: int | None = None) -> None:
        self.interrupt_at = interrupt_at
        self.steps = 0

    def config_dict(self) -> dict:
        return {"model": "tiny"}

    def setup(self, rt: Runtime) -> None:
        self.model = nn.Sequential(nn.Conv2d(3, 6, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                   nn.Dropout(0.3), nn.Linear(6, 4))
        self.module = rt.prepare_model(self.model)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.1, momentum=0.9)
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, 3)
        data = synthetic_images()
        self.source = TensorBatches(data, batch_size=8, device=rt.device, mean=(0.5,) * 3, std=(0.25,) * 3,
                                    seed=rt.seed, augment=Augment(2, True, 2), rank=rt.rank, world_size=rt.world_size)
        self.test = TensorBatches(synthetic_images(16, 1), batch_size=8, device=rt.device, mean=(0.5,) * 3,
                                  std=(0.25,) * 3, shuffle=False)

    def train_batches(self):
        return self.source

    def start_epoch(self, epoch: int) -> dict:
        return {"lr": self.optimizer.param_groups[0]["lr"]}

    def train_step(self, batch, rt: Runtime) -> dict:
        self.steps += 1
        if self.interrupt_at is not None and self.steps == self.interrupt_at:
            signal.raise_signal(signal.SIGINT)  # as if Ctrl-C arrived during this step
        x, y = batch
        loss = nn.functional.cross_entropy(self.module(x), y)
        rt.backward_step(loss, self.optimizer, max_norm=5.0)
        n = y.new_tensor(y.numel())
        return {"n": n, "loss": loss.detach() * n}

    def end_epoch(self, epoch: int) -> dict:
        self.scheduler.step()
        return {"extra": epoch * 10}

    def evaluate(self, epoch: int, rt: Runtime) -> dict:
        self.model.eval()
        with torch.no_grad():
            hits = sum((self.model(x).argmax(1) == y).sum().item() for x, y in self.test.batches(0))
        self.model.train()
        return {"test_acc": hits / 16}

    def state_dict(self) -> dict:
        return {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])

    def save_weights(self, directory: Path) -> None:
        save_file({k: v.contiguous() for k, v in self.model.state_dict().items()}, str(directory / "model.safetensors"))

    def load_weights(self, directory: Path) -> None:
        self.model.load_state_dict(load_file(str(directory / "model.safetensors")))


def config(run_dir: Path, **kw) -> EngineConfig:
    return EngineConfig(epochs=3, run_dir=str(run_dir), seed=5, device="cpu", quiet=True, **kw)


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / "checkpoint" / "last" / "model.safetensors"))


def history(run_dir: Path) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in ("seconds", "images_per_s")} for line in lines]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("ref") / "run"
    run_task(TinyTask(), config(run_dir))
    return run_dir


def test_run_directory_layout_and_records(reference):
    assert sorted(p.name for p in reference.iterdir()) == ["checkpoint", "config.json", "metrics.jsonl"]
    config_json = json.loads((reference / "config.json").read_text())
    assert config_json["kind"] == "tiny" and config_json["task"] == {"model": "tiny"}
    assert config_json["engine"]["seed"] == 5 and config_json["world_size"] == 1
    records = [json.loads(line) for line in (reference / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert [r["step"] for r in records] == [6, 12, 18]  # 48 examples / batch 8
    assert [r["extra"] for r in records] == [0, 10, 20]
    for r in records:
        assert {"lr", "train_loss", "test_acc", "seconds", "images_per_s"} <= set(r)
        assert r["train_loss"] > 0 and r["images_per_s"] > 0
    assert records[0]["lr"] == pytest.approx(0.1) and records[1]["lr"] < 0.1
    progress = json.loads((reference / "checkpoint" / "last" / "progress.json").read_text())
    digests = progress.pop("sha256")
    assert progress == {"epoch": 3, "step": 0, "global_step": 18, "epochs": 3, "finished": True}
    assert digests == checkpoint_digests(reference / "checkpoint" / "last")
    best = load_state(reference / "checkpoint" / "best" / "state.pt")
    assert best["best"] == max(r["test_acc"] for r in records)


def test_same_seed_same_weights(reference, tmp_path):
    run_task(TinyTask(), config(tmp_path / "again"))
    assert all(torch.equal(a, weights(tmp_path / "again")[k]) for k, a in weights(reference).items())


def test_ctrl_c_saves_mid_epoch_and_resume_is_exact(reference, tmp_path):
    run_dir = tmp_path / "run"
    with pytest.raises(RunInterrupted) as stop:
        run_task(TinyTask(interrupt_at=9), config(run_dir, resume_hint="tiny --resume {run_dir}"))
    message = str(stop.value)
    assert "epoch 2 step 3" in message and f"tiny --resume {run_dir}" in message
    progress = json.loads((run_dir / "checkpoint" / "last" / "progress.json").read_text())
    assert (progress["epoch"], progress["step"], progress["finished"]) == (1, 3, False)
    assert len(history(run_dir)) == 1
    run_task(TinyTask(), config(run_dir), resume=True)
    assert history(run_dir) == history(reference)
    for key, value in weights(reference).items():
        assert torch.equal(value, weights(run_dir)[key]), key


class CrashingTask(TinyTask):
    """Dies with an ordinary exception at a step, as a killed process would: nothing is saved then."""

    def __init__(self, crash_at: int) -> None:
        super().__init__()
        self.crash_at = crash_at

    def train_step(self, batch, rt: Runtime) -> dict:
        if self.steps + 1 == self.crash_at:
            raise RuntimeError("killed")
        return super().train_step(batch, rt)


def test_crash_after_a_step_checkpoint_resumes_exactly(reference, tmp_path):
    run_dir = tmp_path / "run"
    with pytest.raises(RuntimeError, match="killed"):
        run_task(CrashingTask(crash_at=17), config(run_dir, checkpoint_every=5))
    state = load_state(run_dir / "checkpoint" / "last" / "state.pt")
    assert (state["epoch"], state["step"], state["global_step"]) == (2, 3, 15)  # mid-epoch step checkpoint
    run_task(TinyTask(), config(run_dir, checkpoint_every=5), resume=True)
    assert history(run_dir) == history(reference)
    for key, value in weights(reference).items():
        assert torch.equal(value, weights(run_dir)[key]), key


class LongerTask(CrashingTask):
    """12 steps per epoch, so the observers' steps (every 10th of an epoch) come once per epoch."""

    def setup(self, rt: Runtime) -> None:
        super().setup(rt)
        self.source = TensorBatches(synthetic_images(96), batch_size=8, device=rt.device, mean=(0.5,) * 3,
                                    std=(0.25,) * 3, seed=rt.seed, rank=rt.rank, world_size=rt.world_size)


class Watcher(Observer):
    """Records what the loop tells it, and where the checkpoint is when it does."""

    steps = True

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def on_start(self, start: RunStart) -> None:
        self.run_dir = start.run_dir
        self.calls.append(("start", start.resumed, start.global_step, len(start.history), start.step_scalars))

    def on_step(self, global_step: int, scalars: dict[str, float]) -> None:
        self.calls.append(("step", global_step, scalars))

    def on_epoch(self, record: dict, history: list[dict]) -> None:
        saved = json.loads((self.run_dir / "checkpoint" / "last" / "progress.json").read_text())
        assert history[-1] is record
        self.calls.append(("epoch", record["step"], saved["global_step"], len(history)))

    def on_finish(self, summary: dict | None) -> None:
        self.calls.append(("finish", summary is not None and summary["last"]["epoch"]))


def test_observers_see_the_start_steps_records_after_their_checkpoint_and_the_end(tmp_path):
    run_dir, killed, resumed = tmp_path / "run", Watcher(), Watcher()
    with pytest.raises(RuntimeError, match="killed"):
        run_task(LongerTask(crash_at=12), config(run_dir, checkpoint_every=10), observers=[killed])
    (_, _, at_ten), = [c for c in killed.calls if c[0] == "step"]
    assert set(at_ten) == {"train_loss"} and 0 < at_ten["train_loss"] < 10
    assert killed.calls == [("start", False, 0, 0, {}), ("step", 10, at_ten), ("finish", False)]
    run_task(LongerTask(crash_at=0), config(run_dir, checkpoint_every=10), resume=True, observers=[resumed])
    # resumed at step 10, a logged step: its running mean comes back from the checkpoint's sums
    assert resumed.calls[0] == ("start", True, 10, 0, at_ten)
    steps = [c[1] for c in resumed.calls if c[0] == "step"]
    assert steps == [22, 34]
    # each record once its checkpoint holds it, then the summary
    assert [c for c in resumed.calls if c[0] in ("epoch", "finish")] == [
        ("epoch", 12, 12, 1), ("epoch", 24, 24, 2), ("epoch", 36, 36, 3), ("finish", 3)]
    assert [r["step"] for r in history(run_dir)] == [12, 24, 36]


class StepCounter(Observer):
    """What the progress bar is told: each epoch's start (steps, done, scalars), every step, the end of its steps."""

    advances = True

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def on_epoch_start(self, epoch: int, steps: int, done: int, scalars: dict) -> None:
        self.calls.append(("epoch_start", epoch, steps, done, sorted(scalars)))

    def on_advance(self, step: int) -> None:
        self.calls.append(("advance", step))

    def on_steps_end(self, epoch: int) -> None:
        self.calls.append(("steps_end", epoch))


def test_the_progress_bar_is_an_observer_of_every_step(tmp_path, monkeypatch, capsys):
    from rich.console import Console

    run_dir, counter = tmp_path / "run", StepCounter()
    with pytest.raises(RuntimeError, match="killed"):
        run_task(LongerTask(crash_at=17), config(run_dir, checkpoint_every=15), observers=[counter])
    assert counter.calls[:14] == [("epoch_start", 0, 12, 0, ["lr"]), *[("advance", i) for i in range(1, 13)],
                                  ("steps_end", 0)]
    assert counter.calls[14:] == [("epoch_start", 1, 12, 0, ["lr"]), ("advance", 1), ("advance", 2), ("advance", 3),
                                  ("advance", 4)]
    resumed = StepCounter()  # resumed at the step-15 checkpoint: epoch 2, 3 of its 12 steps done
    monkeypatch.setattr(Console, "is_terminal", property(lambda self: True))
    run_task(LongerTask(crash_at=0), replace(config(run_dir, checkpoint_every=15), quiet=False), resume=True,
             observers=[resumed])
    assert resumed.calls[:2] == [("epoch_start", 1, 12, 3, ["lr"]), ("advance", 4)]
    assert [c for c in resumed.calls if c[0] == "steps_end"] == [("steps_end", 1), ("steps_end", 2)]
    shown = capsys.readouterr().err
    assert "epoch 2/3" in shown and "epoch 3/3" in shown and "loss " in shown  # the bar, with its running loss
    assert "estimate: about " in shown and "run ~" in shown


def test_resumed_finished_run_does_nothing(reference, tmp_path):
    before = (reference / "metrics.jsonl").read_text()
    summary = run_task(TinyTask(), config(reference), resume=True)
    assert summary["last"]["epoch"] == 3
    assert (reference / "metrics.jsonl").read_text() == before


def test_resume_modes_never_must_auto_decide_in_one_place(reference, tmp_path):
    """`never` starts (a folder killed before its first checkpoint too), `must` needs a checkpoint, `auto`
    continues a run that has one and starts one that has not; the same decision the commands ask for."""
    run_dir = tmp_path / "run"
    assert [resumes(mode, run_dir) for mode in ("never", "auto")] == [False, False]
    with pytest.raises(GdasError, match="config.json"):
        resumes("must", run_dir)
    with pytest.raises(RuntimeError, match="killed"):
        run_task(CrashingTask(crash_at=3), config(run_dir), resume="auto")  # killed before its first checkpoint
    assert sorted(p.name for p in run_dir.iterdir()) == ["config.json"]
    assert resumes("auto", run_dir) is False
    with pytest.raises(GdasError, match="never wrote a checkpoint"):
        resumes("must", run_dir)
    with pytest.raises(RuntimeError, match="killed"):
        run_task(CrashingTask(crash_at=9), config(run_dir, checkpoint_every=5), resume="auto")  # starts again
    assert resumes("auto", run_dir) and resumes("must", run_dir) and not resumes("never", run_dir)
    with pytest.raises(GdasError, match="not empty"):
        run_task(TinyTask(), config(run_dir), resume="never")
    watcher = Watcher()
    run_task(TinyTask(), config(run_dir, checkpoint_every=5), resume="auto", observers=[watcher])
    assert watcher.calls[0][:3] == ("start", True, 6)  # continued from the checkpoint of epoch 1
    assert history(run_dir) == history(reference)
    for key, value in weights(reference).items():
        assert torch.equal(value, weights(run_dir)[key]), key
    assert resume_mode(True) is ResumeMode.MUST and resume_mode(False) is ResumeMode.NEVER
    with pytest.raises(ValueError):
        resume_mode("sometimes")


def test_refuses_non_empty_run_dir_and_missing_checkpoint(tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("keep me")
    with pytest.raises(GdasError, match="not empty"):
        run_task(TinyTask(), config(tmp_path / "busy"))
    assert (tmp_path / "busy" / "notes.txt").read_text() == "keep me"
    with pytest.raises(GdasError, match="config.json"):
        run_task(TinyTask(), config(tmp_path / "busy"), resume=True)


def test_bad_engine_options_are_one_line_errors(tmp_path):
    for kw, option in (({"epochs": 0}, "--epochs"), ({"device": "tpu"}, "--device"),
                       ({"precision": "fp8"}, "--precision"), ({"checkpoint_every": -1}, "--checkpoint-every"),
                       ({"epochs": 10**9}, "--epochs"), ({"seed": -1}, "--seed"), ({"seed": 2**32}, "--seed"),
                       ({"eval_every": 0}, "--eval-every"), ({"limit_train_batches": 2**31}, "--limit-train-batches")):
        cfg = config(tmp_path / "x")
        for k, v in kw.items():
            setattr(cfg, k, v)
        with pytest.raises(GdasError, match=option):
            run_task(TinyTask(), cfg)
        with pytest.raises(GdasError, match=f"x/config.json: saved {option}"):  # a saved config, resumed
            EngineConfig.from_dict(cfg.to_dict(), str(tmp_path / "x" / "config.json"))
    assert not (tmp_path / "x").exists()


def test_checkpoint_swap_recovers_from_a_crash_between_renames(tmp_path):
    target = tmp_path / "checkpoint" / "last"
    write_checkpoint(target, lambda d: (d / "a.txt").write_text("one"))
    os.replace(target, tmp_path / "checkpoint" / ".last.old")  # the crash: old moved away, new not in place
    assert find_checkpoint(target) == target and (target / "a.txt").read_text() == "one"
    write_checkpoint(target, lambda d: (d / "a.txt").write_text("two"))
    assert (target / "a.txt").read_text() == "two"
    assert sorted(p.name for p in target.parent.iterdir()) == ["last"]  # no temp or old folders left


def test_state_files_refuse_pickled_objects(tmp_path):
    bad = tmp_path / "state.pt"
    torch.save({"format": "gdas-run-state-v1", "payload": argparse.Namespace(a=1)}, bad)  # needs unpickling
    with pytest.raises(GdasError, match="untrusted"):
        load_state(bad)


def test_ddp_dealing_matches_one_process_batches():
    """K ranks with batch B/K together see exactly the one-process batch B, in the same order."""
    for n in (48, 50):
        single = epoch_order(n, seed=3, epoch=2, shuffle=True)
        ranks = [epoch_order(n, seed=3, epoch=2, shuffle=True, rank=r, world_size=2) for r in range(2)]
        for i in range(len(ranks[0]) // 4):
            together = torch.cat([r[i * 4:(i + 1) * 4] for r in ranks])
            assert sorted(together.tolist()) == sorted(single[i * 8:(i + 1) * 8].tolist())
    epochs = [epoch_order(48, seed=3, epoch=e, shuffle=True) for e in (1, 2)]
    assert not torch.equal(*epochs)
    evaluation = [epoch_order(7, seed=0, epoch=0, shuffle=False, rank=r, world_size=2) for r in range(2)]
    assert sorted(torch.cat(evaluation).tolist()) == list(range(7))  # nothing dropped or repeated


def test_tensor_batches_resume_from_any_batch():
    source = TensorBatches(synthetic_images(), batch_size=8, device=torch.device("cpu"), mean=(0.5,) * 3,
                           std=(0.25,) * 3, seed=1, augment=Augment(2, True, 4))
    full = list(source.batches(1))
    tail = list(source.batches(1, 4))
    assert len(full) == len(source) == 6 and len(tail) == 2
    for (x1, y1), (x2, y2) in zip(full[4:], tail):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)
    other_epoch = next(iter(source.batches(2)))[0]
    assert not torch.equal(full[0][0], other_epoch)


def test_split_indices_is_a_seeded_half_split():
    a, b = split_indices(11, seed=4)
    assert sorted(a + b) == list(range(11)) and len(a) == 5
    assert (a, b) == split_indices(11, seed=4) and a != split_indices(11, seed=5)[0]


def test_loader_batches_are_deterministic_per_example(tmp_path):
    """Random torchvision transforms are seeded per (seed, epoch, index), also with workers."""
    from torchvision import transforms as T

    data = [(torch.rand(3, 12, 12, generator=torch.Generator().manual_seed(i)), i % 3) for i in range(10)]
    transform = T.Compose([T.RandomCrop(8), T.RandomHorizontalFlip()])

    def source(workers: int) -> LoaderBatches:
        return LoaderBatches(data, transform, batch_size=4, device=torch.device("cpu"), seed=2, num_workers=workers)

    full = list(source(0).batches(0))
    assert len(full) == 3
    tail = list(source(0).batches(0, 1))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(full[1:], tail))
    with_workers = list(source(2).batches(0))
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(full, with_workers))


def test_cutout_of_folder_sets_is_seeded_and_clipped():
    from gdas_cli.data import Cutout

    image = torch.ones(3, 10, 10)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        out = Cutout(4)(image)
    holes = (out == 0).all(dim=0)
    assert 0 < holes.sum() <= 16 and image.eq(1).all()  # a (clipped) 4x4 square; the input is untouched
    rows, cols = holes.nonzero().unbind(1)
    assert rows.max() - rows.min() < 4 and cols.max() - cols.min() < 4
