"""gdas: GDAS neural architecture search with versioned JSON genotypes and Hub-published weights.

    import gdas_cli
    genotype = gdas_cli.load_genotype("gdas_frc")
    cell = gdas_cli.build_cell(genotype, c_prev_prev=48, c_prev=48, c=16, reduction=False)
    model = gdas_cli.create_model("gdas_frc_cifar10")              # zoo name, or hf-hub:org/name@rev
"""

from .errors import GdasError
from .genotype import Cell, Edge, Genotype, load_genotype
from .models import NetworkArgs, build_cell, build_network
from .zoo import create_model, list_models

__version__ = "0.1.0"

__all__ = ["Cell", "Edge", "GdasError", "Genotype", "NetworkArgs", "build_cell", "build_network", "load_genotype"]
__all__ += ["create_model", "list_models"]
