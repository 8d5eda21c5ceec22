"""`gdas train DATASET --genotype REF`: train the final network of a genotype.

One subcommand per dataset (cifar10, cifar100, imagenet, digits, `folder PATH` also spelt
`folder:PATH`); the language-model datasets are added to this group by `cli/lm.py`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from typer._click.globals import get_current_context

from ..errors import GdasError
from ._app import GdasGroup
from ._output import console, err_console
from ._run_options import RunOptions, with_run_options


class TrainGroup(GdasGroup):
    """Accepts `folder:PATH` as `folder PATH`, and names the known datasets when one is unknown."""

    def resolve_command(self, ctx: Any, args: list[str]) -> tuple[str | None, Any, list[str]]:
        name = args[0] if args else ""
        if name.startswith("folder:"):
            return "folder", self.commands["folder"], [name[len("folder:"):], *args[1:]]
        if name and not name.startswith("-") and name not in self.commands:
            known = ", ".join(sorted(n for n in self.commands if n != "folder")) + ", folder:PATH"
            raise GdasError(f"{name}: unknown dataset; known: {known}")
        return super().resolve_command(ctx, args)


app = typer.Typer(
    cls=TrainGroup,
    help="Train the final network of a genotype with the paper's recipe.\n\n"
    "Examples:\n\n"
    "  gdas train digits --genotype gdas_frc --epochs 2\n\n"
    "  gdas train cifar10 --genotype gdas_frc --data-dir ~/data --download\n\n"
    "  torchrun --nproc_per_node 8 --no-python gdas train imagenet --genotype gdas --data-dir ~/imagenet\n\n"
    "  gdas train digits --resume runs/train-digits-20250101-120000\n\n"
    "  gdas train ptb --genotype gdas_rnn --data-dir ~/data/ptb",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False, rich_markup_mode="rich",
)

_RECIPE = "Recipe (the defaults of every option below)"


def _opt(help: str, *decls: str) -> Any:
    return typer.Option(*decls, help=help, rich_help_panel=_RECIPE)


GenotypeOpt = Annotated[Optional[str], typer.Option(
    "--genotype", "-g",
    help="Zoo name, name@version, genotype JSON path or hf-hub:org/repo\\[@rev] (not needed with --resume).")]
DataDirOpt = Annotated[Optional[Path], typer.Option(
    help="Where the data is (or goes, with --download). Default: data.")]
DownloadOpt = Annotated[Optional[bool], typer.Option("--download/--no-download", help="Fetch CIFAR if missing.")]
WorkersOpt = Annotated[Optional[int], typer.Option(help="DataLoader workers for image folders (default 4).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the final summary as JSON.")]


def train_dataset(
    genotype: GenotypeOpt = None,
    data_dir: DataDirOpt = None,
    download: DownloadOpt = None,
    epochs: Annotated[Optional[int], _opt("Epochs.")] = None,
    batch_size: Annotated[Optional[int], _opt("Global batch size (split over DDP processes).")] = None,
    lr: Annotated[Optional[float], _opt("Initial learning rate.")] = None,
    lr_min: Annotated[Optional[float], _opt("Final learning rate of the cosine schedule.")] = None,
    schedule: Annotated[Optional[str], _opt("cosine (to --lr-min) or exponential (x --lr-gamma per epoch).")] = None,
    lr_gamma: Annotated[Optional[float], _opt("Per-epoch factor of the exponential schedule.")] = None,
    momentum: Annotated[Optional[float], _opt("SGD momentum.")] = None,
    nesterov: Annotated[Optional[bool], _opt("Nesterov momentum.", "--nesterov/--no-nesterov")] = None,
    weight_decay: Annotated[Optional[float], _opt("Weight decay.")] = None,
    grad_clip: Annotated[Optional[float], _opt("Gradient norm clip (0: none).")] = None,
    auxiliary: Annotated[Optional[bool], _opt("Auxiliary head at the second reduction.", "--aux/--no-aux")] = None,
    aux_weight: Annotated[Optional[float], _opt("Weight of the auxiliary loss.")] = None,
    drop_path: Annotated[Optional[float], _opt("Final drop-path probability (ramped per epoch from 0).")] = None,
    label_smoothing: Annotated[Optional[float], _opt("Label smoothing of the training loss.")] = None,
    cutout: Annotated[Optional[int], _opt("Cutout square side in pixels (0: off).")] = None,
    augment: Annotated[Optional[bool], _opt("Training augmentation (crop, flip, cutout).",
                                            "--augment/--no-augment")] = None,
    C: Annotated[Optional[int], _opt("Initial channels C.", "--channels", "-C")] = None,
    layers: Annotated[Optional[int], _opt("Number of cells.")] = None,
    workers: WorkersOpt = None,
    limit_eval_batches: Annotated[Optional[int], _opt("Evaluate on at most N batches (0: all).")] = None,
    json_output: JsonOpt = False,
    run: RunOptions = RunOptions(),
) -> None:
    dataset = get_current_context().info_name
    _train(dataset, locals(), run)


def train_folder(
    path: Annotated[Path, typer.Argument(help="Folder with train/ and val/ (or test/), one subfolder per class.")],
    net: Annotated[Optional[str], _opt("cifar (32x32, CIFAR recipe) or imagenet (224, ImageNet recipe).")] = None,
    genotype: GenotypeOpt = None,
    epochs: Annotated[Optional[int], _opt("Epochs.")] = None,
    batch_size: Annotated[Optional[int], _opt("Global batch size (split over DDP processes).")] = None,
    lr: Annotated[Optional[float], _opt("Initial learning rate.")] = None,
    weight_decay: Annotated[Optional[float], _opt("Weight decay.")] = None,
    drop_path: Annotated[Optional[float], _opt("Final drop-path probability (ramped per epoch from 0).")] = None,
    auxiliary: Annotated[Optional[bool], _opt("Auxiliary head at the second reduction.", "--aux/--no-aux")] = None,
    augment: Annotated[Optional[bool], _opt("Training augmentation.", "--augment/--no-augment")] = None,
    C: Annotated[Optional[int], _opt("Initial channels C.", "--channels", "-C")] = None,
    layers: Annotated[Optional[int], _opt("Number of cells.")] = None,
    workers: WorkersOpt = None,
    json_output: JsonOpt = False,
    run: RunOptions = RunOptions(),
) -> None:
    """Train on your own images: an ImageFolder tree (also written `gdas train folder:PATH`)."""
    options = dict(locals())
    _train(f"folder:{options.pop('path')}", options, run)


_DATASET_HELP = {
    "cifar10": "CIFAR-10 (paper recipe: C=36, 20 cells, batch 96, 600 epochs, SGD 0.025 cosine to 1e-4, wd 3e-4, "
               "aux 0.4, drop-path 0.2, cutout 16). Data via torchvision under --data-dir (--download to fetch).",
    "cifar100": "CIFAR-100, with the CIFAR-10 recipe.",
    "imagenet": "ImageNet mobile setting (14 cells, C=50 or 52 with the FRC, batch 128, 250 epochs, nesterov SGD 0.1 "
                "x 0.97 per epoch, wd 3e-5, label smoothing 0.1). Needs --data-dir with train/ and val/ class folders.",
    "digits": "The built-in demo set: 1797 real 8x8 handwritten digits (scikit-learn) at 32x32, 1500 train / 297 test. "
              "Small recipe: C=16, 8 cells, batch 64, 10 epochs, SGD 0.05 cosine, drop-path 0.1; two epochs take "
              "about a minute on two CPU cores.",
}
for _name, _help in _DATASET_HELP.items():
    app.command(_name, help=_help)(with_run_options(train_dataset))
app.command("folder")(with_run_options(train_folder))


def _train(dataset: str, options: dict[str, Any], run: RunOptions) -> None:
    """Resolve the configs (new run or --resume), train, report; Ctrl-C exits 130 with the resume command."""
    from ..engine import RunInterrupted
    from ..genotype import load_genotype
    from ..train import make_config, resume_configs, train

    options = {k: v for k, v in options.items() if k != "run"}
    as_json = options.pop("json_output")
    if run.resume is not None:
        ctx_typed = {k: v for k, v in {**options, **vars(run)}.items() if k in run.explicit}
        task_cfg, engine_cfg = resume_configs(run.resume, dataset, ctx_typed)
    else:
        if not options.get("genotype"):
            raise GdasError("--genotype: required for a new run "
                            "(a zoo name such as gdas_frc, name@version or a JSON path)")
        genotype = load_genotype(options["genotype"])
        task_cfg = make_config(dataset, genotype, {**options, "data_dir": _str(options.get("data_dir"))})
        slug = "folder-" + Path(dataset[len("folder:"):]).name if dataset.startswith("folder:") else dataset
        engine_cfg = run.engine_config(epochs=task_cfg.epochs, run_name=f"train-{slug}",
                                       resume_hint=f"gdas train {dataset} --resume {{run_dir}}")
    try:
        summary = train(task_cfg, engine_cfg, resume=run.resume is not None)
    except RunInterrupted as stop:
        if stop.rank == 0:
            err_console.print(str(stop), markup=False, highlight=False)
        raise typer.Exit(130)
    if summary.get("rank", 0) == 0:
        _report(summary, as_json)


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def _report(summary: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(summary, indent=2))
        return
    last = summary["last"]
    line = f"done: {summary['run_dir']}"
    if "test_top1" in last:
        line += f"  test top-1 error {100 - last['test_top1']:.2f}%"
    if summary.get("best") is not None:
        line += f" (best {100 - summary['best']:.2f}%)"
    console.print(line + f"\nevaluate with: gdas eval {summary['run_dir']}", highlight=False, markup=False)
