"""Genotype references of every kind: zoo names, `name@version`, JSON paths and `hf-hub:org/name[@rev]`.

`genotype.py` resolves what is local; a Hub reference needs the Hub client, so the one resolver
that accepts every kind lives here, above `hub`.
"""

from __future__ import annotations

from pathlib import Path

from .genotype import HUB_PREFIX, Genotype, load_local_genotype


def load_genotype(ref: str | Path) -> Genotype:
    """Resolve a zoo name, `name@version`, a JSON path or an `hf-hub:` reference to a validated Genotype."""
    if isinstance(ref, str) and ref.startswith(HUB_PREFIX):
        from .hub import load_hub_genotype  # only here: the Hub client is slow to import

        return load_hub_genotype(ref[len(HUB_PREFIX) :])
    return load_local_genotype(ref)
