"""Versioned JSON genotypes: the types, validation, and name resolution.

A genotype file (schema `gdas-genotype`) holds a name, a semantic version, a kind (`cnn` or `rnn`),
its search space (`spaces.SPACES`: `darts`, `darts_rnn` or `nas-bench-201`), the space's cells as lists
of nodes (each node a list of `[op, input]` edges) with their concat lists, the derive rule and
provenance. The space decides which cells (roles) a genotype holds, which ops it may name, how many
edges each node has and how the cell's output is made; a DARTS reduce cell may be the string `"frc"`:
the paper's fixed reduction cell. The schema needed no new version for NAS-Bench-201: the `space` field
was there from the start (a gdas without that space says so naming it).

Local references resolve here: a path to a JSON file; `name` (the newest version in the zoo);
`name@version`; a NAS-Bench-201 arch string (`|nor_conv_3x3~0|+|...|`). `hf-hub:` references need the
Hub client and resolve one layer up, in `refs.py`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from . import nb201
from .errors import GdasError
from .jsonio import parse_json, read_text
from .spaces import FRC, KIND_SPACES, RNN_OPS, SPACES, SearchSpace, get_space

SCHEMA_ID = "gdas-genotype"
SCHEMA_VERSION = 1
MAX_GENOTYPE_BYTES = 1024 * 1024  # the largest shipped genotype is about 2 KB
MAX_NODES = 64  # the published cells have 4 (CNN) and 8 (RNN)
# the largest final network any option may ask for (paper: C=36..52, 14..20 cells); larger ones only fail to
# allocate or take minutes to build before saying so
MAX_NETWORK_CHANNELS = 4096
MAX_NETWORK_CELLS = 1000
HUB_PREFIX = "hf-hub:"
SIZES_FILE = "sizes.json"  # in genotypes/: the zoo networks' counts (models/size.py measures them)
CNN_OPS = SPACES["darts"].genotype_ops  # the ops a DARTS-space genotype may name
__all__ = ["CNN_OPS", "FRC", "RNN_OPS", "Cell", "Edge", "Genotype"]

DERIVE_RULES = ("published", *(rule for space in SPACES.values() for rule in space.derive_rules))
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
_EDGE_RE = re.compile(r'\[\s*"([^"]+)",\s*(\d+)\s*\]')
_NODE_RE = re.compile(r'\[\s*(\["[^"]+", \d+\],?\s*)+\]')
_INT_LIST_RE = re.compile(r"\[\s*\d+(,\s*\d+)*\s*\]")
_SEMVER_RE = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")


@dataclass(frozen=True)
class Edge:
    op: str
    input: int


@dataclass(frozen=True)
class Cell:
    """A discrete cell: `nodes[i]` lists the edges summed into intermediate node i."""

    nodes: tuple[tuple[Edge, ...], ...]
    concat: tuple[int, ...]

    @property
    def steps(self) -> int:
        return len(self.nodes)

    def to_dict(self) -> dict[str, Any]:
        return {"nodes": [[[e.op, e.input] for e in node] for node in self.nodes], "concat": list(self.concat)}


@dataclass(frozen=True)
class Genotype:
    """One published or searched cell set of a search space; a cell per role of the space.

    `normal` and `reduce` (a Cell, or `"frc"`) for `darts`, `recurrent` for `darts_rnn`, `cell` for
    `nas-bench-201`.
    """

    name: str
    version: str
    space: str
    normal: Cell | None = None
    reduce: Cell | str | None = None
    recurrent: Cell | None = None
    cell: Cell | None = None
    derive_rule: str = "published"
    provenance: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def search_space(self) -> SearchSpace:
        return get_space(self.space)

    @property
    def kind(self) -> str:
        """cnn or rnn: the family of networks the cells build (the space's)."""
        return self.search_space.kind

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def uses_frc(self) -> bool:
        return self.reduce == FRC

    def cells(self) -> dict[str, Cell | str]:
        """The cells by role, in the space's order."""
        found: dict[str, Cell | str | None] = {
            "normal": self.normal,
            "reduce": self.reduce,
            "recurrent": self.recurrent,
            "cell": self.cell,
        }
        return {role: cell for role in self.search_space.roles if (cell := found[role]) is not None}

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "schema": SCHEMA_ID,
            "schema_version": SCHEMA_VERSION,
            "name": self.name,
            "version": self.version,
            "kind": self.kind,
            "space": self.space,
        }
        for role, cell in self.cells().items():
            data[role] = cell if isinstance(cell, str) else cell.to_dict()
        data["derive_rule"] = self.derive_rule
        data["provenance"] = self.provenance
        return data

    def to_json(self) -> str:
        """Indented JSON with one line per node, so diffs of genotype files stay readable."""
        text = json.dumps(self.to_dict(), indent=2)
        text = _EDGE_RE.sub(lambda m: f'["{m.group(1)}", {m.group(2)}]', text)
        text = _NODE_RE.sub(lambda m: "[" + ", ".join(re.findall(r"\[[^\[\]]*\]", m.group(0))) + "]", text)
        return _INT_LIST_RE.sub(lambda m: "[" + ", ".join(re.findall(r"\d+", m.group(0))) + "]", text) + "\n"

    @classmethod
    def from_dict(cls, data: Any, source: str = "<genotype>") -> Genotype:
        """Validate `data` completely; every problem is a GdasError naming `source`."""
        return _Validator(source).genotype(data)

    @classmethod
    def from_json(cls, text: str, source: str = "<genotype>") -> Genotype:
        if len(text) > MAX_GENOTYPE_BYTES:
            raise GdasError(f"{source}: {len(text):,} characters; a genotype file holds at most {MAX_GENOTYPE_BYTES:,}")
        return cls.from_dict(parse_json(text, source), source)


def from_arch_str(text: str, name: str = "nb201", version: str = "1.0.0", provenance: dict | None = None) -> Genotype:
    """A NAS-Bench-201 arch string as a genotype (lossless: `to_arch_str` gives it back)."""
    nodes = nb201.parse_arch_str(text)
    cell = Cell(tuple(tuple(Edge(op, j) for op, j in node) for node in nodes), (len(nodes),))
    genotype = Genotype(name, version, "nas-bench-201", cell=cell, provenance=dict(provenance or {}))
    return Genotype.from_dict(genotype.to_dict(), source="arch string")


def to_arch_str(genotype: Genotype) -> str:
    """The NAS-Bench-201 arch string of a genotype of that space."""
    if genotype.space != "nas-bench-201" or genotype.cell is None:
        raise GdasError(f"{genotype.ref}: a {genotype.space} genotype has no NAS-Bench-201 arch string")
    return nb201.format_arch_str(tuple(tuple((e.op, e.input) for e in node) for node in genotype.cell.nodes))


class _Validator:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, problem: str) -> GdasError:
        return GdasError(f"{self.source}: {where}: {problem}" if where else f"{self.source}: {problem}")

    def genotype(self, data: Any) -> Genotype:
        if not isinstance(data, dict):
            raise self.fail("", "a genotype must be a JSON object")
        if data.get("schema") != SCHEMA_ID:
            raise self.fail("schema", f"expected {SCHEMA_ID!r}, got {data.get('schema')!r}")
        version = data.get("schema_version")
        if not _is_int(version) or version != SCHEMA_VERSION:
            raise self.fail(
                "schema_version", f"unsupported version {version!r} (this gdas reads version {SCHEMA_VERSION})"
            )
        name, version_text, kind = (self.string(data, key) for key in ("name", "version", "kind"))
        if not _NAME_RE.match(name):
            raise self.fail("name", f"{name!r} must be lower-case letters, digits, '_', '.' or '-'")
        if not _SEMVER_RE.match(version_text):
            raise self.fail("version", f"{version_text!r} is not a semantic version like 1.0.0")
        space = self.space(data, kind)
        rule = data.get("derive_rule", "published")
        if rule not in ("published", *space.derive_rules):
            rules = ", ".join(("published", *space.derive_rules))
            raise self.fail("derive_rule", f"{rule!r} must be one of {rules} for space {space.name}")
        provenance = data.get("provenance", {})
        if not isinstance(provenance, dict):
            raise self.fail("provenance", "must be a JSON object")
        cells = self.cells(data, space)
        return Genotype(name, version_text, space.name, derive_rule=rule, provenance=provenance, **cells)

    def space(self, data: dict, kind: str) -> SearchSpace:
        if kind not in KIND_SPACES:
            raise self.fail("kind", f"{kind!r} must be one of {', '.join(KIND_SPACES)}")
        name = data.get("space")
        if name not in SPACES:
            raise self.fail("space", f"unknown search space {name!r}; known: {', '.join(SPACES)}")
        space = SPACES[name]
        if space.kind != kind:
            raise self.fail("space", f"a {kind} genotype cannot use the {space.kind} space {name!r}")
        return space

    def string(self, data: dict, key: str) -> str:
        value = data.get(key)
        if not isinstance(value, str):
            raise self.fail(key, "missing or not a string")
        return value

    def cells(self, data: dict, space: SearchSpace) -> dict[str, Any]:
        for role in {"normal", "reduce", "recurrent", "cell"} - set(space.roles):
            if role in data:
                raise self.fail(role, f"a {space.name} genotype has no {role} cell")
        cells: dict[str, Any] = {}
        for role in space.roles:
            if role not in data:
                raise self.fail(role, "missing cell")
            fixed = space.fixed_cells.get(role)
            if fixed is not None and data[role] == fixed:
                cells[role] = fixed
            else:
                cells[role] = self.cell(data[role], space, role)
        return cells

    def cell(self, data: Any, space: SearchSpace, role: str) -> Cell:
        fixed = space.fixed_cells.get(role)
        if not isinstance(data, dict):
            alternative = f' (or "{fixed}")' if fixed else ""
            raise self.fail(role, f'must be an object with "nodes" and "concat"{alternative}')
        nodes = data.get("nodes")
        if not isinstance(nodes, list) or not nodes:
            raise self.fail(f"{role}.nodes", "wrong number of nodes: need a non-empty list of nodes")
        if len(nodes) > MAX_NODES or (space.steps is not None and len(nodes) != space.steps):
            want = f"exactly {space.steps}" if space.steps is not None else f"at most {MAX_NODES}"
            raise self.fail(f"{role}.nodes", f"wrong number of nodes: {len(nodes)}, {want}")
        n_inputs = space.n_inputs
        parsed = tuple(self.node(node, f"{role} node {i}", space, n_inputs + i) for i, node in enumerate(nodes))
        return Cell(parsed, self.concat(data.get("concat"), space, role, n_inputs + len(parsed)))

    def concat(self, concat: Any, space: SearchSpace, role: str, n_states: int) -> tuple[int, ...]:
        if not isinstance(concat, list) or not concat or not all(_is_int(c) for c in concat):
            raise self.fail(f"{role}.concat", "must be a non-empty list of state indices")
        if space.output == "last" and concat != [n_states - 1]:
            raise self.fail(f"{role}.concat", f"{concat} must be [{n_states - 1}]: the cell's output is its last node")
        bad = [c for c in concat if not space.n_inputs <= c < n_states]
        if bad or len(set(concat)) != len(concat):
            raise self.fail(
                f"{role}.concat",
                f"{concat} must name distinct nodes {space.n_inputs}..{n_states - 1} "
                f"(the cell has {n_states - space.n_inputs} nodes)",
            )
        return tuple(concat)

    def node(self, data: Any, where: str, space: SearchSpace, n_states: int) -> tuple[Edge, ...]:
        arity = space.edges_per_node if space.edges_per_node is not None else n_states
        if not isinstance(data, list) or len(data) != arity:
            raise self.fail(where, f"must be a list of {arity} [op, input] edge(s)")
        edges = []
        for j, edge in enumerate(data):
            if not (isinstance(edge, list) and len(edge) == 2 and isinstance(edge[0], str) and _is_int(edge[1])):
                raise self.fail(f"{where} edge {j}", f"must be [op, input], got {json.dumps(edge)}")
            op, index = edge
            if op not in space.genotype_ops:
                raise self.fail(f"{where} edge {j}", f"unknown op {op!r}")
            if not 0 <= index < n_states:
                raise self.fail(f"{where} edge {j}", f"input index {index} out of range 0..{n_states - 1}")
            if space.edges_per_node is None and index != j:
                raise self.fail(
                    f"{where} edge {j}", f"reads state {index}; edge {j} must read state {j} (one each, in order)"
                )
            edges.append(Edge(op, index))
        return tuple(edges)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def data_dir(name: str) -> Path:
    """A data folder shipped in the wheel (`gdas_cli/<name>`), or the source tree's top-level one."""
    packaged = resources.files("gdas_cli") / name
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parent.parent / name


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def read_genotype_file(path: Path) -> Genotype:
    return Genotype.from_json(read_text(path, "genotype file", MAX_GENOTYPE_BYTES), str(path))


def zoo_genotypes() -> list[Genotype]:
    """Every shipped genotype, sorted by name then version."""
    paths = sorted(p for p in data_dir("genotypes").glob("*.json") if p.name != SIZES_FILE)
    found = [read_genotype_file(path) for path in paths]
    return sorted(found, key=lambda g: (g.name, _version_key(g.version)))


def shipped_size(genotype: Genotype, net: str) -> dict[str, Any] | None:
    """The counts of a zoo genotype's network for `net` at the paper's sizes, from genotypes/sizes.json.

    None when `genotype` is not exactly a shipped one (a file that reuses a zoo name counts live).
    """
    shipped = next((g for g in zoo_genotypes() if g.ref == genotype.ref), None)
    if shipped is None or shipped.cells() != genotype.cells():
        return None
    table = json.loads((data_dir("genotypes") / SIZES_FILE).read_text(encoding="utf-8"))
    return next((row for row in table["sizes"] if row["genotype"] == genotype.ref and row["net"] == net), None)


def iter_zoo(kind: str | None = None) -> Iterator[Genotype]:
    return (g for g in zoo_genotypes() if kind is None or g.kind == kind)


def _from_zoo(ref: str) -> Genotype:
    name, _, version = ref.partition("@")
    versions = [g for g in zoo_genotypes() if g.name == name]
    if not versions:
        known = sorted({g.name for g in zoo_genotypes()})
        raise GdasError(f"{ref}: unknown genotype name {name!r}; known: {', '.join(known)}")
    if not version:
        return versions[-1]
    for genotype in versions:
        if genotype.version == version:
            return genotype
    have = ", ".join(g.version for g in versions)
    raise GdasError(f"{ref}: {name} has no version {version} (have {have})")


def _looks_like_path(ref: str) -> bool:
    return ref.endswith(".json") or "/" in ref or "\\" in ref or Path(ref).exists()


def load_local_genotype(ref: str | Path) -> Genotype:
    """Resolve a zoo name, `name@version`, a JSON path or a NAS-Bench-201 arch string to a validated
    Genotype (no Hub)."""
    if isinstance(ref, Path):
        return read_genotype_file(ref)
    if ref.startswith(HUB_PREFIX):
        raise GdasError(f"{ref}: a Hub reference; resolve it with gdas_cli.refs.load_genotype")
    if nb201.looks_like_arch_str(ref):
        return from_arch_str(ref)
    if _looks_like_path(ref):
        return read_genotype_file(Path(ref))
    return _from_zoo(ref)


def check_frc_channels(genotype: Genotype, C: int, option: str = "--channels") -> None:
    """The one channel rule of final networks with the FRC: its grouped convolutions see 2C channels at the
    first reduction and need a multiple of 8, so C must be divisible by 4."""
    if genotype.uses_frc and C % 4:
        raise GdasError(f"{option}: {C} must be divisible by 4 for the fixed reduction cell (it gets 2C channels)")


def describe_cell(cell: Cell | str, space: str, chosen: Any = None) -> list[str]:
    """Readable lines, `node 2 = sep_conv_3x3(c_{k-1}) + skip_connect(c_{k-2})`, then the output.

    `chosen`: a searched cell's [probability, margin over the runner-up] per kept edge, node by node (its
    provenance's `movement`), shown after each op as `p=0.21 +0.05`.
    """
    if cell == FRC:
        return ["the fixed reduction cell (FRC, paper Fig. 3): no searched ops"]
    assert isinstance(cell, Cell)
    facts = get_space(space)
    state = facts.state_name

    def edge(node: int, j: int, e: Edge) -> str:
        text = f"{e.op}({state(e.input)})"
        try:
            probability, margin = chosen[node][j]
            return f"{text} [p={float(probability):.3f} {float(margin):+.3f}]"
        except (TypeError, IndexError, ValueError):  # none recorded (a published cell) or malformed
            return text

    lines = [
        f"node {facts.n_inputs + i} = " + " + ".join(edge(i, j, e) for j, e in enumerate(node))
        for i, node in enumerate(cell.nodes)
    ]
    if facts.output == "last":
        return [*lines, f"output = {state(cell.concat[-1])}"]
    return [*lines, f"output = {facts.output}(" + ", ".join(state(i) for i in cell.concat) + ")"]


def chosen_of(genotype: Genotype, role: str) -> Any:
    """A searched genotype's recorded [probability, margin] per kept edge of cell `role` (None if none)."""
    movement = genotype.provenance.get("movement")
    cells = movement.get("cells") if isinstance(movement, dict) else None
    cell = cells.get(role) if isinstance(cells, dict) else None
    return cell.get("chosen") if isinstance(cell, dict) else None
