"""The package's layers: every module imports only modules of its own layer or the ones below it.

The order is written once, here, and drawn in README's Architecture section. A module may import
(at module or function level) a module of its own layer or of a lower one, never a higher one; no
two modules import each other, directly or through others. Two checks: the imports as written
(the AST of every file, function bodies included), and what importing each module on its own in a
fresh interpreter really loads.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "gdas_cli"

# lowest first; a name is a module or a subpackage of gdas_cli ("" is the package itself)
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("core", ("", "errors", "files", "jsonio", "checkpoint", "ops", "sampler", "genotype", "metrics", "plot", "curves", "data",
              "corpus", "progress", "sizing", "movement", "collapse", "nb201", "spaces", "limits")),
    ("models", ("models", "weights")),
    ("published", ("published",)),
    ("io", ("hub", "rundir", "refs", "runs")),
    ("engine", ("engine", "tensorboard")),
    ("tasks", ("language", "search", "training", "evaluate", "bench")),
    ("api", ("zoo", "export")),
    ("cli", ("cli", "__main__")),
]


def module_names() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def layer_of(module: str) -> int:
    """The layer index of `gdas_cli[.x[.y]]`: its first component below gdas_cli decides."""
    top = module.split(".")[1] if "." in module else ""
    for index, (_, members) in enumerate(LAYERS):
        if top in members:
            return index
    raise AssertionError(f"{module} is in no layer: add it to LAYERS in tests/test_layers.py and to README")


def imports_of(module: str) -> set[str]:
    """Every gdas_cli module `module` imports anywhere in its file (absolute names)."""
    path = PACKAGE.parent / (module.replace(".", "/") + ".py")
    is_package = not path.exists()
    if is_package:
        path = PACKAGE.parent / module.replace(".", "/") / "__init__.py"
    package = module if is_package else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("gdas_cli")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("gdas_cli"):
                continue
            found.add(target)
            for alias in node.names:  # `from . import hub` imports the module gdas_cli.hub
                candidate = f"{target}.{alias.name}"
                if candidate in MODULES:
                    found.add(candidate)
    found.discard(module)
    return found


MODULES = module_names()


@pytest.mark.parametrize("module", MODULES)
def test_imports_as_written_stay_at_or_below_the_module_layer(module: str) -> None:
    mine = layer_of(module)
    higher = sorted(m for m in imports_of(module) if layer_of(m) > mine)
    assert not higher, f"{module} ({LAYERS[mine][0]}) imports from a higher layer: {higher}"


def test_no_import_cycles() -> None:
    graph = {m: {i for i in imports_of(m) if i in MODULES and not m.startswith(i + ".") and i != "gdas_cli"}
             for m in MODULES}
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt] if nxt in stack else [node, nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for module in MODULES:
        if module not in state:
            visit(module, [module])


_PROBE = """
import json, os, sys
import torch  # loaded once in the parent; each child then imports one gdas_cli module on its own
results = {}
for name in sys.argv[1:]:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            __import__(name)
            loaded = sorted(m for m in sys.modules if m == "gdas_cli" or m.startswith("gdas_cli."))
            payload = json.dumps({"ok": True, "loaded": loaded})
        except BaseException as err:
            payload = json.dumps({"ok": False, "error": repr(err)})
        os.write(write, payload.encode())
        os._exit(0)
    os.close(write)
    chunks = []
    while chunk := os.read(read, 1 << 16):
        chunks.append(chunk)
    os.waitpid(pid, 0)
    results[name] = json.loads(b"".join(chunks))
print(json.dumps(results))
"""


def test_importing_each_module_alone_loads_nothing_above_it() -> None:
    result = subprocess.run([sys.executable, "-c", _PROBE, *MODULES], capture_output=True, text=True, timeout=300,
                            cwd=PACKAGE.parent)
    assert result.returncode == 0, result.stderr[-3000:]
    problems = []
    for module, outcome in json.loads(result.stdout).items():
        if not outcome["ok"]:
            problems.append(f"{module}: import failed: {outcome['error']}")
            continue
        above = [m for m in outcome["loaded"] if layer_of(m) > layer_of(module)]
        if above:
            problems.append(f"{module} loads {above}")
    assert not problems, "\n".join(problems)


def test_the_package_alone_loads_no_submodule() -> None:
    """`import gdas_cli` is cheap: its public names are imported on first use."""
    code = "import sys, gdas_cli; print(sorted(m for m in sys.modules if m.startswith('gdas_cli')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=PACKAGE.parent)
    assert out.stdout.strip() == "['gdas_cli']", out.stdout + out.stderr
