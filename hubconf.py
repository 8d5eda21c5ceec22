"""torch.hub entry points: one per model of the gdas zoo (zoo/*.json).

    model = torch.hub.load("<owner>/<repo>", "gdas_frc_cifar10")                 # from GitHub
    model = torch.hub.load("path/to/checkout", "gdas_frc_cifar10", source="local")
    model = torch.hub.load(..., "gdas_frc_cifar10", num_classes=100, C=16)        # create_model options

Each entry point is `gdas_cli.create_model(name, pretrained=..., **kwargs)`; see its docstring.
"""

dependencies = ["torch", "safetensors", "huggingface_hub"]

from gdas_cli.zoo import create_model as _create_model  # noqa: E402
from gdas_cli.zoo import load_zoo as _load_zoo  # noqa: E402


def _entry_point(name, description):
    def entry_point(pretrained=False, **kwargs):
        return _create_model(name, pretrained=pretrained, **kwargs)

    entry_point.__name__ = entry_point.__qualname__ = name
    entry_point.__doc__ = (
        f"{description}.\n\n"
        "pretrained=True loads the published weights (an error for a genotype-only entry);\n"
        "keyword arguments are those of gdas_cli.create_model (num_classes, C, layers, net, auxiliary)."
    )
    return entry_point


globals().update({name: _entry_point(name, entry.description) for name, entry in _load_zoo().items()})
