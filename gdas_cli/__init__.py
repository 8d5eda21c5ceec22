"""gdas: GDAS neural architecture search with versioned JSON genotypes and Hub-published weights.

    import gdas_cli
    genotype = gdas_cli.load_genotype("gdas_frc")
    cell = gdas_cli.build_cell(genotype, c_prev_prev=48, c_prev=48, c=16, reduction=False)
    model = gdas_cli.create_model("gdas_frc_cifar10")              # zoo name, or hf-hub:org/name@rev

The names below are imported on first use, so `import gdas_cli.errors` (or the CLI's --help) does
not pull in torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    "GdasError": "errors",
    "Cell": "genotype",
    "Edge": "genotype",
    "Genotype": "genotype",
    "load_genotype": "refs",
    "NetworkArgs": "models",
    "build_cell": "models",
    "build_network": "models",
    "create_model": "zoo",
    "list_models": "zoo",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'gdas_cli' has no attribute {name!r}")
    value = getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
