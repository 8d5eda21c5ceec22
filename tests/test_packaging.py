"""A real wheel carries the genotype zoo, and an installed (non-editable) package finds it."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(ROOT)],
        check=True, capture_output=True,
    )
    (path,) = out.glob("gdas_cli-*.whl")
    return path


def test_wheel_ships_genotypes_and_console_script(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    shipped = {Path(n).name for n in names if n.startswith("gdas_cli/genotypes/")}
    assert {p.name for p in (ROOT / "genotypes").glob("*.json")} == shipped
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "gdas = gdas_cli.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_installed_package_finds_its_zoo(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        check=True, capture_output=True,
    )
    code = (
        "import gdas_cli, gdas_cli.genotype as g;"
        "print(gdas_cli.__file__); print(g.data_dir('genotypes')); print(gdas_cli.load_genotype('gdas_frc').ref)"
    )
    env = {"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    module_file, zoo_dir, ref = result.stdout.split()
    assert module_file.startswith(str(target)) and zoo_dir.startswith(str(target))
    assert ref == "gdas_frc@1.0.0"
