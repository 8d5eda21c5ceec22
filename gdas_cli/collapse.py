"""The collapse check: how much of a derived cell is parameter-free ops, and a warning when a normal cell
is mostly so (torch-free; the ops and roles are the search space's: spaces.SearchSpace).

Differentiable searches drift towards parameter-free ops (skip connections, pools) in the normal cell as
the search goes on, since they make the supernet's loss fall fastest early; the cell derived then trains
to a shallow, weak network (DARTS's known failure: RobustDARTS, Zela et al., ICLR 2020; DARTS+, Liang et
al., 2019; P-DARTS, Chen et al., ICCV 2019). Per cell with at least one edge, `param_free` counts the edges
whose op has no parameters (`none` only where the space's derive rule keeps it: NAS-Bench-201) and their
share; a normal cell above COLLAPSE_SHARE gets one warning line naming the usual remedies.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from .genotype import Cell, Genotype

COLLAPSE_SHARE = 0.5
REMEDIES = (
    "limit skip connections with gdas derive --max-skip 2 (P-DARTS), derive an earlier --epoch (early stopping, "
    "DARTS+), or search on more data or with a stronger --arch-weight-decay (RobustDARTS)"
)


def param_free(genotype: Genotype) -> dict[str, dict[str, Any]]:
    """Per derived cell: its edges, how many are parameter-free, their share and which ops they are.

    Empty for a space without parameter-free ops (the recurrent cell: every op follows its own linear map)
    and for a fixed cell (the FRC), which no search chose."""
    space = genotype.search_space
    if not space.param_free_ops:
        return {}
    found = {}
    for role, cell in genotype.cells().items():
        if not isinstance(cell, Cell):
            continue
        ops = [edge.op for node in cell.nodes for edge in node]
        free = Counter(op for op in ops if op in space.param_free_ops)
        if ops:
            found[role] = {
                "share": round(sum(free.values()) / len(ops), 4),
                "param_free": sum(free.values()),
                "edges": len(ops),
                "ops": dict(sorted(free.items())),
            }
    return found


def collapsed(genotype: Genotype, shares: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The normal cells (the space's `normal_roles`) whose share is above COLLAPSE_SHARE."""
    roles = genotype.search_space.normal_roles
    return [role for role in roles if role in shares and shares[role]["share"] > COLLAPSE_SHARE]


def share_line(genotype: Genotype) -> str | None:
    """One line on the parameter-free share of each cell (from the provenance, else counted), a warning when
    a normal cell is mostly parameter-free; None for a space without parameter-free ops."""
    shares = genotype.provenance.get("param_free") or param_free(genotype)
    if not shares:
        return None
    parts = []
    for role, cell in shares.items():
        ops = ", ".join(f"{op} x{n}" if n > 1 else op for op, n in cell["ops"].items())
        which = f": {ops}" if ops else ""
        parts.append(f"{role} {cell['param_free']}/{cell['edges']} edges ({cell['share']:.0%}{which})")
    facts = "parameter-free ops: " + "; ".join(parts)
    bad = collapsed(genotype, shares)
    if bad:
        cells = " and ".join(f"the {role} cell" for role in bad)
        return f"warning: {cells} is mostly parameter-free, the known collapse of differentiable search; {facts}; " + (
            f"remedies: {REMEDIES}"
        )
    return facts


def max_skip_line(genotype: Genotype) -> str | None:
    """What `--max-skip` changed (the provenance's `max_skip`), in one line; None without it."""
    limited = genotype.provenance.get("max_skip")
    if not limited:
        return None
    edges = [f"{r['cell']} node {r['node']} <- {r['input']} (p_skip {r['p_skip']})" for r in limited["replaced"]]
    done = f"replaced {', '.join(edges)}" if edges else "nothing to replace"
    return (
        f"--max-skip {limited['limit']}: {limited['skips_before']} skip_connect edge(s) before, "
        f"{limited['skips_after']} after; {done} ({limited['rule']})"
    )
