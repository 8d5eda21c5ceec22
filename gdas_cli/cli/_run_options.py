"""The options every engine-backed command shares, added by one decorator, and what they all do with them.

    @app.command("ptb")
    @with_run_options
    def ptb(genotype: ..., epochs: ..., run: RunOptions) -> None:
        engine = run.engine_config(epochs=epochs, run_name="train-ptb", resume_hint=...)

The command receives the engine options as one `RunOptions` (which also records which options the
user typed, so a resumed run can refuse changed settings) instead of a dozen parameters. Every
engine command (`search cnn|rnn`, `train ...`) uses it, `run_slug` for its default folder name
and `run_until_interrupted` for Ctrl-C.
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..errors import GdasError, reworded
from ..limits import COUNT, EPOCHS, SEED, Range
from ._choices import Device, Precision, plain
from ._output import err_console

if TYPE_CHECKING:
    from ..engine import EngineConfig

_PANEL = "Run, devices and checkpoints"


def _option(
    annotation: Any, default: Any, *decls: str, help: str, metavar: str | None = None, within: Range | None = None
) -> inspect.Parameter:
    name = decls[0].lstrip("-").split("/")[0].replace("-", "_")
    # a flag's default is its --no- form, which would only widen the help column
    option = typer.Option(
        *decls,
        help=help,
        rich_help_panel=_PANEL,
        metavar=metavar,
        show_default=annotation is not bool,
        callback=within.check if within is not None else None,
    )
    return inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=Annotated[annotation, option]
    )


RUN_PARAMETERS = [
    _option(
        Path | None,
        None,
        "--run-dir",
        help="Run folder to create (default: a new one in runs/, named after the command, data set and time).",
    ),
    _option(
        Path | None,
        None,
        "--resume",
        help="Continue the run in this folder from its last checkpoint; "
        "its config.json is kept and changed settings are refused.",
    ),
    _option(int, 0, "--seed", help="Seed of weights, data order, augmentation and drop-path.", within=SEED),
    _option(Device, Device.auto, "--device", metavar="DEVICE", help="auto (cuda if available), cpu or cuda."),
    _option(
        Precision,
        Precision.fp32,
        "--precision",
        metavar="MODE",  # the choices are in the help; listed in the type column they squeeze the names
        help="fp32, bf16, fp16 (AMP with loss scaling) or amp (bf16 where supported, else fp16; fp32 on CPU).",
    ),
    _option(bool, False, "--channels-last", help="NHWC memory format (faster convs on GPUs)."),
    _option(bool, False, "--compile", help="torch.compile the network (gdas train of CNN cells; refused elsewhere)."),
    _option(bool, False, "--sync-bn", help="SyncBatchNorm across DDP processes (GPU only; refused in one process)."),
    _option(bool, False, "--deterministic", help="Deterministic kernels (slower on GPU)."),
    _option(int, 0, "--checkpoint-every", help="Also checkpoint every N steps (0: at epoch ends only).", within=COUNT),
    _option(int, 1, "--eval-every", help="Evaluate every N epochs (and after the last).", within=EPOCHS),
    _option(
        int,
        0,
        "--limit-train-batches",
        help="Train on at most N batches per epoch (0: all; for quick checks).",
        within=COUNT,
    ),
    _option(bool, False, "--quiet", "-q", help="No progress bar or per-epoch lines."),
    _option(
        bool,
        False,
        "--tensorboard/--no-tensorboard",
        help="Write TensorBoard event files to <run>/tensorboard/ (needs the tensorboard extra); "
        "a resumed run keeps its choice unless given.",
    ),
]
RUN_NAMES = [p.name for p in RUN_PARAMETERS]


@dataclass
class RunOptions:
    """The shared options' values, and which options of the whole command were typed by the user."""

    run_dir: Path | None = None
    resume: Path | None = None
    seed: int = 0
    device: str = "auto"
    precision: str = "fp32"
    channels_last: bool = False
    compile: bool = False
    sync_bn: bool = False
    deterministic: bool = False
    checkpoint_every: int = 0
    eval_every: int = 1
    limit_train_batches: int = 0
    quiet: bool = False
    tensorboard: bool = False
    explicit: frozenset[str] = field(default_factory=frozenset)

    def typed(self, names: dict[str, str] | None = None, /, **values: Any) -> dict[str, Any]:
        """The options the user typed (of `values`, then these run options), keyed by config name.

        `names` maps an option's parameter name to its config key where they differ.
        """
        names = names or {}
        every = {**{name: getattr(self, name) for name in RUN_NAMES}, **values}
        return {names.get(k, k): v for k, v in every.items() if k in self.explicit and k not in ("resume",)}

    @property
    def mode(self) -> str:
        """How the run starts (engine.ResumeMode's value): "must" with --resume; "auto" for a restarted torchrun
        group (`--max-restarts`) with --run-dir, which continues the run if it has a checkpoint and starts it
        again if not; "never" otherwise."""
        if self.resume is not None:
            return "must"
        return "auto" if self.run_dir is not None and _restarts() > 0 else "never"

    def resumed_run(self) -> Path | None:
        """The run folder this command continues (its saved settings are the run's), or None for a new run.
        engine.resumes decides; a `--seeds` parent, which has no checkpoint of its own, is continued when its
        seeds.json says it started."""
        from ..engine import resumes
        from ..search.seeds import is_seeds_run

        folder = self.resume if self.resume is not None else self.run_dir
        if folder is None or self.mode == "never":
            return None
        if is_seeds_run(folder) or resumes(self.mode, folder):
            return folder
        return None

    def engine_config(self, *, epochs: int, run_name: str, resume_hint: str = "") -> EngineConfig:
        """An EngineConfig for a new run (a resumed one keeps its saved one: engine.resume_settings)."""
        from ..engine import EngineConfig

        if self.resume is not None:
            raise GdasError("--resume: a resumed run keeps its saved engine config")
        return EngineConfig(
            epochs=epochs,
            run_dir=str(self.run_dir) if self.run_dir else None,
            run_name=run_name,
            seed=self.seed,
            device=self.device,
            precision=self.precision,
            channels_last=self.channels_last,
            compile=self.compile,
            sync_bn=self.sync_bn,
            deterministic=self.deterministic,
            checkpoint_every=self.checkpoint_every,
            eval_every=self.eval_every,
            limit_train_batches=self.limit_train_batches,
            quiet=self.quiet,
            tensorboard=self.tensorboard,
            resume_hint=resume_hint,
        )


def with_run_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add RUN_PARAMETERS to a Typer command; it gets them as its `run: RunOptions` argument."""
    signature = inspect.signature(func, eval_str=True)  # real annotations: the wrapper lives in another module
    own = [p for name, p in signature.parameters.items() if name != "run"]

    @functools.wraps(func)
    def command(**kwargs: Any) -> Any:
        ctx: typer.Context = kwargs.pop(_CONTEXT)
        kwargs = {name: plain(value) for name, value in kwargs.items()}  # configs hold strings, not enums
        typed = {name for name in ctx.params if _typed(ctx, name)}
        run = RunOptions(**{name: kwargs.pop(name) for name in RUN_NAMES}, explicit=frozenset(typed))
        if run.resume is not None and run.run_dir is not None and not _same_path(run.resume, run.run_dir):
            raise GdasError("--run-dir: give either --run-dir or --resume, not both")
        warn_unresumable_restarts(run)
        if "info_name" in inspect.signature(func).parameters:
            kwargs["info_name"] = ctx.info_name
        return func(**kwargs, run=run)

    context = inspect.Parameter(_CONTEXT, inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context)
    shown = [p for p in own if p.name != "info_name"]
    command.__signature__ = signature.replace(parameters=[*shown, context, *RUN_PARAMETERS])  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in [*shown, context, *RUN_PARAMETERS]}
    del command.__wrapped__  # typer must see the new signature, not the wrapped function's
    return command


_CONTEXT = "_typer_context"


def warn_unresumable_restarts(run: RunOptions) -> None:
    """Under `torchrun --max-restarts` without --run-dir each start would be a new run: say so once."""
    if run.resume is not None or run.run_dir is not None:
        return
    if int(os.environ.get("TORCHELASTIC_MAX_RESTARTS", "0") or 0) > 0 and _restarts() == 0:
        if int(os.environ.get("RANK", "0")) == 0:
            err_console.print(
                "warning: --max-restarts without --run-dir: a restarted group starts a new run; pass --run-dir "
                "so it resumes from the last checkpoint",
                markup=False,
                highlight=False,
            )


def _restarts() -> int:
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") or 0)


def _typed(ctx: typer.Context, name: str) -> bool:
    """Whether the user gave option `name` (on the command line or through its environment variable)."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT")


def _same_path(a: Path, b: Path) -> bool:
    return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()


def run_slug(dataset: str) -> str:
    """A run-folder-safe name for a dataset spec (folder:PATH -> folder-<last part>)."""
    if dataset.startswith("folder:"):
        return "folder-" + "".join(c if c.isalnum() else "-" for c in Path(dataset[len("folder:") :]).name)
    return dataset


def check_saved(check: Callable[[], None], run_dir: Path) -> None:
    """Run a config's option checks on the config a resumed run saved: a bad value names that file."""
    try:
        check()
    except GdasError as err:
        raise reworded(err, f"{Path(run_dir) / 'config.json'}: saved {err}") from None


def run_until_interrupted(start: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run; Ctrl-C (after the engine saved a checkpoint) is one line on stderr (rank 0) and exit code 130."""
    from ..engine import RunInterrupted

    try:
        return start()
    except RunInterrupted as stop:
        if stop.rank == 0:
            err_console.print(str(stop), markup=False, highlight=False)
        raise typer.Exit(130) from None
