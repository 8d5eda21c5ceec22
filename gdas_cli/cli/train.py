"""`gdas train DATASET --genotype REF`: train the final network of a genotype.

One subcommand per dataset: images (cifar10, cifar100, imagenet, digits, `folder PATH` also spelt
`folder:PATH`) and text (ptb, wt2, demo-text). Every one takes the shared run options.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated, Any

import typer

from ..errors import GdasError
from ..limits import (
    BATCH,
    BPTT,
    CHANNELS,
    COUNT,
    CUTOUT,
    DECAY_FACTOR,
    EMSIZE,
    EPOCH_WINDOW,
    EPOCHS,
    IMAGE_SIZE,
    LAYERS,
    NON_NEGATIVE,
    POSITIVE,
    PROBABILITY,
    WORKERS,
    Range,
)
from ._app import GdasGroup
from ._choices import NetFamily, Schedule
from ._output import console, print_json, print_plan
from ._run_options import RunOptions, check_saved, run_slug, run_until_interrupted, with_run_options


class TrainGroup(GdasGroup):
    """Accepts `folder:PATH` as `folder PATH`, and names the known datasets when one is unknown."""

    def resolve_command(self, ctx: Any, args: list[str]) -> tuple[str | None, Any, list[str]]:
        name = args[0] if args else ""
        if name.startswith("folder:"):
            return "folder", self.commands["folder"], [name[len("folder:") :], *args[1:]]
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
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)

_RECIPE = "Recipe (the defaults of every option below)"


def _opt(help: str, *decls: str, within: Range | None = None) -> Any:
    return typer.Option(
        *decls, help=help, rich_help_panel=_RECIPE, callback=within.check if within is not None else None
    )


GenotypeOpt = Annotated[
    str | None,
    typer.Option(
        "--genotype",
        "-g",
        help="Zoo name, name@version, genotype JSON path or hf-hub:org/repo\\[@rev] (not needed with --resume).",
    ),
]
DataDirOpt = Annotated[Path | None, typer.Option(help="Where the data is (or goes, with --download). Default: data.")]
DownloadOpt = Annotated[bool | None, typer.Option("--download/--no-download", help="Fetch CIFAR if missing.")]
WorkersOpt = Annotated[
    int | None,
    typer.Option(
        help="DataLoader workers for image folders too large for memory. \\[default: cores - 1, at most 4]",
        callback=WORKERS.check,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the final summary as JSON.")]
InitOpt = Annotated[
    str | None,
    typer.Option(
        help="Start from these weights (fine-tuning): a zoo model with weights, hf-hub:org/name@rev, an exported "
        "folder or a checkpoint. Loaded strictly; only the classifier is new when the class count differs."
    ),
]
ValSplitOpt = Annotated[
    int | None,
    typer.Option(
        help="Hold N training images out (seeded by --seed, recorded in split.json) to choose checkpoint/best; "
        "without it there is no best and the final epoch is the result.",
        callback=COUNT.check,
    ),
]
# the recipe's options, shared by every image data set; None: the recipe's (or the sizing rule's) value
EpochsOpt = Annotated[int | None, _opt("Epochs (with --resume: more than the run's extends it).", within=EPOCHS)]
BatchOpt = Annotated[int | None, _opt("Global batch size (split over DDP processes).", within=BATCH)]
LrOpt = Annotated[float | None, _opt("Initial learning rate.", within=POSITIVE)]
LrMinOpt = Annotated[float | None, _opt("Final learning rate of the cosine schedule.", within=NON_NEGATIVE)]
ScheduleOpt = Annotated[
    Schedule | None,
    typer.Option(
        metavar="NAME", help="cosine (to --lr-min) or exponential (x --lr-gamma per epoch).", rich_help_panel=_RECIPE
    ),
]
LrGammaOpt = Annotated[float | None, _opt("Per-epoch factor of the exponential schedule.", within=DECAY_FACTOR)]
MomentumOpt = Annotated[float | None, _opt("SGD momentum.", within=PROBABILITY)]
NesterovOpt = Annotated[bool | None, _opt("Nesterov momentum.", "--nesterov/--no-nesterov")]
WeightDecayOpt = Annotated[float | None, _opt("Weight decay.", within=NON_NEGATIVE)]
GradClipOpt = Annotated[float | None, _opt("Gradient norm clip (0: none).", within=NON_NEGATIVE)]
AuxOpt = Annotated[bool | None, _opt("Auxiliary head at the second reduction.", "--aux/--no-aux")]
AuxWeightOpt = Annotated[float | None, _opt("Weight of the auxiliary loss.", within=NON_NEGATIVE)]
DropPathOpt = Annotated[
    float | None, _opt("Final drop-path probability (ramped per epoch from 0).", within=PROBABILITY)
]
SmoothingOpt = Annotated[float | None, _opt("Label smoothing of the training loss.", within=PROBABILITY)]
CutoutOpt = Annotated[int | None, _opt("Cutout square side in pixels (0: off).", within=CUTOUT)]
HflipOpt = Annotated[
    bool | None,
    _opt("Flip training images horizontally. \\[default: on; off for digits]", "--hflip/--no-hflip"),
]
AugmentOpt = Annotated[bool | None, _opt("Training augmentation (crop, flip, cutout).", "--augment/--no-augment")]
ChannelsOpt = Annotated[int | None, _opt("Initial channels C.", "--channels", "-C", within=CHANNELS)]
LayersOpt = Annotated[int | None, _opt("Number of cells.", within=LAYERS)]
ImageSizeOpt = Annotated[
    int | None,
    _opt(
        "Resize images to this square side. \\[default: 32, the CIFAR network's input; others need --no-aux]",
        within=IMAGE_SIZE,
    ),
]
LimitEvalOpt = Annotated[int | None, _opt("Evaluate on at most N batches (0: all).", within=COUNT)]


def train_dataset(
    genotype: GenotypeOpt = None,
    data_dir: DataDirOpt = None,
    download: DownloadOpt = None,
    epochs: EpochsOpt = None,
    batch_size: BatchOpt = None,
    lr: LrOpt = None,
    lr_min: LrMinOpt = None,
    schedule: ScheduleOpt = None,
    lr_gamma: LrGammaOpt = None,
    momentum: MomentumOpt = None,
    nesterov: NesterovOpt = None,
    weight_decay: WeightDecayOpt = None,
    grad_clip: GradClipOpt = None,
    auxiliary: AuxOpt = None,
    aux_weight: AuxWeightOpt = None,
    drop_path: DropPathOpt = None,
    label_smoothing: SmoothingOpt = None,
    cutout: CutoutOpt = None,
    hflip: HflipOpt = None,
    augment: AugmentOpt = None,
    C: ChannelsOpt = None,
    layers: LayersOpt = None,
    image_size: ImageSizeOpt = None,
    workers: WorkersOpt = None,
    limit_eval_batches: LimitEvalOpt = None,
    val_split: ValSplitOpt = None,
    init: InitOpt = None,
    json_output: JsonOpt = False,
    info_name: str = "",
    run: RunOptions = RunOptions(),
) -> None:
    options = dict(locals())
    _train(options.pop("info_name"), options, run)


def train_folder(
    path: Annotated[Path, typer.Argument(help="Folder with train/ and val/ (or test/), one subfolder per class.")],
    net: Annotated[
        NetFamily | None,
        typer.Option(
            metavar="NET",
            help="cifar (CIFAR network and recipe) or imagenet (224, ImageNet recipe).",
            rich_help_panel=_RECIPE,
        ),
    ] = None,
    genotype: GenotypeOpt = None,
    epochs: EpochsOpt = None,
    batch_size: BatchOpt = None,
    lr: LrOpt = None,
    lr_min: LrMinOpt = None,
    schedule: ScheduleOpt = None,
    lr_gamma: LrGammaOpt = None,
    momentum: MomentumOpt = None,
    nesterov: NesterovOpt = None,
    weight_decay: WeightDecayOpt = None,
    grad_clip: GradClipOpt = None,
    auxiliary: AuxOpt = None,
    aux_weight: AuxWeightOpt = None,
    drop_path: DropPathOpt = None,
    label_smoothing: SmoothingOpt = None,
    cutout: CutoutOpt = None,
    hflip: HflipOpt = None,
    augment: AugmentOpt = None,
    C: ChannelsOpt = None,
    layers: LayersOpt = None,
    image_size: ImageSizeOpt = None,
    workers: WorkersOpt = None,
    limit_eval_batches: LimitEvalOpt = None,
    val_split: ValSplitOpt = None,
    init: InitOpt = None,
    json_output: JsonOpt = False,
    run: RunOptions = RunOptions(),
) -> None:
    """Train on your own images: an ImageFolder tree (also written `gdas train folder:PATH`).

    PATH/train/<class>/<image> and PATH/val/ (or PATH/test/) with the same class folders. The recipe is \
sized to the data by the sizing rule (README, "Your own data"): image side, network size, batch and epochs \
from the number of images, their size and the machine; the plan printed at the start says where each value \
comes from. Mean and std are computed from the training images and recorded.

    Examples:

      gdas train folder:~/icons --genotype my_cell.json

      gdas train folder ~/flowers --genotype gdas_frc --net imagenet --epochs 30

      gdas train folder:~/digits --genotype gdas --no-hflip --image-size 16
    """
    options = dict(locals())
    _train(f"folder:{options.pop('path')}", options, run)


_DATASET_HELP = {
    "cifar10": """CIFAR-10. Recipe from the paper: C=36, 20 cells, 600 epochs, SGD 0.025 cosine, aux weight 0.4,
    drop-path 0.2, cutout; from the 2019 code (the paper is silent or differs): batch 96, cosine to 1e-4 (paper: 0),
    momentum 0.9, wd 3e-4, clip 5, cutout 16 (docs/sources.md). Data via torchvision under --data-dir (--download to
    fetch).

    Examples:

      gdas train cifar10 --genotype gdas_frc --data-dir ~/data --download

      gdas train cifar10 --genotype my_cell.json --epochs 100 --precision amp --channels-last
    """,
    "cifar100": """CIFAR-100, with the CIFAR-10 recipe.

    Examples:

      gdas train cifar100 --genotype gdas --data-dir ~/data --download
    """,
    "imagenet": """ImageNet mobile setting. Recipe from the paper: 14 cells, C=50 (52 with the FRC), batch 128, 250
    epochs, SGD 0.1 x 0.97 per epoch; from the 2019 code: nesterov, momentum 0.9, wd 3e-5, label smoothing 0.1, aux
    0.4, clip 5. Needs --data-dir with train/ and val/ class folders.

    Examples:

      gdas train imagenet --genotype gdas --data-dir ~/imagenet --precision amp

      torchrun --nproc_per_node 8 --no-python gdas train imagenet --genotype gdas --data-dir ~/imagenet
    """,
    "digits": """The built-in demo set: 1797 real 8x8 handwritten digits (scikit-learn) at 32x32, 1500 train / 297
    test. Sized by the sizing rule (README "Your own data"): C=16, 8 cells, batch 64, 10 epochs on a CPU, SGD 0.05
    cosine, drop-path 0.1; an epoch takes about 30 s on two idle CPU cores.

    Examples:

      gdas train digits --genotype gdas_frc --epochs 2

      gdas train digits --resume runs/train-digits-20260101-120000
    """,
}
for _name, _help in _DATASET_HELP.items():
    app.command(_name, help=_help)(with_run_options(train_dataset))
app.command("folder")(with_run_options(train_folder))


def _train(dataset: str, options: dict[str, Any], run: RunOptions) -> None:
    """Resolve the configs (new run or --resume), train, report; Ctrl-C exits 130 with the resume command."""
    from ..engine import resume_settings
    from ..genotype import Genotype
    from ..refs import load_genotype
    from ..training.image import TrainConfig, TrainTask, make_config, train, validate_config

    options = {k: v for k, v in options.items() if k != "run"}
    as_json = options.pop("json_output")
    init_model = None
    saved_run = run.resumed_run()
    if saved_run is not None:
        given = run.typed(**{k: v for k, v in options.items()})
        if given.get("genotype") is not None:
            given["genotype"] = load_genotype(given["genotype"]).to_dict()
        if given.get("data_dir") is not None:
            given["data_dir"] = str(given["data_dir"])
        saved, engine_cfg = resume_settings(saved_run, TrainTask, given)
        task_cfg = TrainConfig.from_dict(saved, str(saved_run / "config.json"))
        resumed = task_cfg
        check_saved(lambda: validate_config(resumed, Genotype.from_dict(resumed.genotype, "saved genotype")), saved_run)
        if task_cfg.dataset != dataset:
            raise GdasError(f"--resume {saved_run}: the run trains on {task_cfg.dataset}, not {dataset}")
        title = f"plan of {saved_run} (resumed)"
    else:
        if not options.get("genotype"):
            raise GdasError(
                "--genotype: required for a new run (a zoo name such as gdas_frc, name@version or a JSON path)"
            )
        from ..data import describe
        from ..sizing import check_workers, this_machine

        genotype = load_genotype(options["genotype"])
        init_ref = options.pop("init", None)
        data_dir = _str(options.get("data_dir"))
        facts, machine = describe(dataset, data_dir or "data"), this_machine(run.device)
        check_workers(options.get("workers"), machine)
        task_cfg = make_config(dataset, genotype, {**options, "data_dir": data_dir}, facts, machine)
        title = f"plan: gdas train {dataset} ({facts.describe()}), {machine.describe()}, genotype {genotype.ref}"
        if init_ref is not None:
            from ..zoo import load_init

            init_model, task_cfg.init = load_init(init_ref)
        engine_cfg = run.engine_config(
            epochs=task_cfg.epochs,
            run_name=f"train-{run_slug(dataset)}",
            resume_hint=f"gdas train {dataset} --resume {{run_dir}}",
        )
    plan = functools.partial(print_plan, title, task_cfg.to_dict(), task_cfg.sources)
    summary = run_until_interrupted(
        lambda: train(task_cfg, engine_cfg, resume=run.mode, init=init_model, on_start=plan)
    )
    if summary.get("rank", 0) == 0:
        _report(summary, as_json)


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def _report(summary: dict[str, Any], as_json: bool) -> None:
    """The run's result in metrics.jsonl's words: the checkpoint it chose (and on which split), its test figure."""
    if as_json:
        print_json({k: v for k, v in summary.items() if k != "rank"})
        return
    chosen = summary["chosen"]
    record = chosen["record"]
    if chosen["checkpoint"] == "best":  # chosen on the validation split held out of the training data
        what = f"checkpoint/best, epoch {chosen['epoch']}, chosen by its {chosen['by']} {summary['best']:.2f}%"
    else:
        what = f"checkpoint/last, the final epoch {chosen['epoch']} (no selection)"
    line = f"done: {summary['run_dir']}  result: {what}"
    if "test_top1" in record:
        line += f"; test_top1 {record['test_top1']:.2f}%"
    console.print(line + f"\nevaluate with: gdas eval {summary['run_dir']}", highlight=False, markup=False)


# ------------------------------------------------------------------------------- language models

TextDataDir = Annotated[Path | None, typer.Option(help="Folder with the train/valid/test text files (ptb, wt2).")]
Epochs = Annotated[
    int | None, typer.Option(help="Epochs (default: the paper's; small for demo-text).", callback=EPOCHS.check)
]
BatchSize = Annotated[int | None, typer.Option(help="Training batch size (streams).", callback=BATCH.check)]
EvalBatch = Annotated[int | None, typer.Option(help="Validation batch size (default 10).", callback=BATCH.check)]
Bptt = Annotated[int | None, typer.Option(help="Base BPTT length (default 35).", callback=BPTT.check)]
Emsize = Annotated[int | None, typer.Option(help="Embedding = hidden size.", callback=EMSIZE.check)]
Lr = Annotated[float | None, typer.Option(help="SGD learning rate (default 20).", callback=POSITIVE.check)]


def train_text(
    genotype: Annotated[
        str | None,
        typer.Option("--genotype", "-g", help="Zoo name, name@version, JSON path or hf-hub: ref of an rnn genotype."),
    ] = None,
    data_dir: TextDataDir = None,
    epochs: Epochs = None,
    batch_size: BatchSize = None,
    eval_batch_size: EvalBatch = None,
    test_batch_size: Annotated[
        int | None,
        typer.Option(
            help="Test batch size (default 10; 1 gives the paper-exact perplexity, slower).", callback=BATCH.check
        ),
    ] = None,
    bptt: Bptt = None,
    emsize: Emsize = None,
    lr: Lr = None,
    weight_decay: Annotated[
        float | None, typer.Option(help="Weight decay (PTB 8e-7, WT2 5e-7).", callback=NON_NEGATIVE.check)
    ] = None,
    nonmono: Annotated[
        int | None, typer.Option(help="ASGD switch window (default 5).", callback=EPOCH_WINDOW.check)
    ] = None,
    test: Annotated[bool, typer.Option(help="Evaluate test perplexity of the best weights at the end.")] = True,
    json_output: JsonOpt = False,
    info_name: str = "",
    run: RunOptions = RunOptions(),
) -> None:
    from ..engine import config_from_dict, resume_settings
    from ..evaluate import evaluate_lm_run
    from ..refs import load_genotype
    from ..rundir import RunDir
    from ..training.lm import LMTrainConfig, LMTrainTask, check_train_config, resolve_train_config, run_lm_training

    dataset = info_name
    values = {
        "data_dir": str(data_dir) if data_dir else None,
        "epochs": epochs,
        "batch_size": batch_size,
        "eval_batch_size": eval_batch_size,
        "test_batch_size": test_batch_size,
        "bptt": bptt,
        "emsize": emsize,
        "lr": lr,
        "weight_decay": weight_decay,
        "nonmono": nonmono,
    }
    saved_run = run.resumed_run()
    if saved_run is not None:
        given = run.typed(genotype=genotype, **values)
        if given.get("genotype") is not None:
            given["genotype"] = load_genotype(given["genotype"]).to_dict()
        saved, engine = resume_settings(saved_run, LMTrainTask, given)
        config = config_from_dict(LMTrainConfig, saved, str(saved_run / "config.json"))
        check_saved(functools.partial(check_train_config, config), saved_run)
        if config.dataset != dataset:
            raise GdasError(f"--resume {saved_run}: the run trains on {config.dataset}, not {dataset}")
    else:
        if genotype is None:
            raise GdasError(f"gdas train {dataset}: --genotype is required (e.g. --genotype gdas_rnn)")
        seed = run.seed if "seed" in run.explicit else None
        config = resolve_train_config(dataset, load_genotype(genotype), {**values, "seed": seed})
        engine = run.engine_config(
            epochs=config.epochs,
            run_name=f"lm-{run_slug(dataset)}",
            resume_hint=f"gdas train {dataset} --resume {{run_dir}}",
        )
    result = run_until_interrupted(lambda: run_lm_training(config, engine, resume=run.mode))
    metrics = None
    if test:
        trained_on = RunDir(Path(result["run_dir"])).read_config().get("device", "cpu")
        metrics = evaluate_lm_run(result["run_dir"], device=trained_on)
    if json_output:  # metrics.jsonl's and eval --json's names
        print_json({"run_dir": str(result["run_dir"]), "best_valid_loss": result.get("best"), "eval": metrics})
        return
    line = f"training done: {result['run_dir']}"
    if result.get("best") is not None:
        line += f"  best valid_loss {result['best']:.4f}"  # the names of metrics.jsonl and eval --json
    if metrics is not None:
        line += (
            f"  valid_ppl {metrics['valid_ppl']:.2f}  test_ppl {metrics['test_ppl']:.2f}  "
            f"params {metrics['params'] / 1e6:.2f}M"
        )
    console.print(line, highlight=False, markup=False)


_TEXT_HELP = {
    "ptb": """Train the language model of an rnn genotype on Penn Treebank (paper: emb = hid = 850, 23M params).

    Recipe: paper: 850 units, 2000 epochs; 2019 code: batch 64, bptt 35, SGD lr 20 switched to ASGD \
(non-monotone 5), wd 8e-7, clip 0.25, dropouts 0.75/0.25/0.75/0.2/0.1 (docs/sources.md "RNN").

    Examples:

      gdas train ptb --genotype gdas_rnn --data-dir ~/data/ptb

      gdas train ptb --resume runs/lm-ptb-20260101-120000
    """,
    "wt2": """Train the language model of an rnn genotype on WikiText-2 (paper: emb = hid = 700, 33M params).

    Recipe: paper: 700 units; 2019 code: 3000 epochs, batch 64, bptt 35, SGD lr 20 switched to ASGD, \
wd 5e-7, clip 0.25, dropouts 0.75/0.15/0.75/0.2/0.1 (docs/sources.md "RNN").

    Examples:

      gdas train wt2 --genotype gdas_rnn --data-dir ~/data/wikitext-2
    """,
    "demo-text": """Train a small language model on the built-in demo-text corpus (Python's own docs; no download).

    Examples:

      gdas train demo-text --genotype gdas_rnn --epochs 2
    """,
}
for _name, _help in _TEXT_HELP.items():
    app.command(_name, help=_help)(with_run_options(train_text))
