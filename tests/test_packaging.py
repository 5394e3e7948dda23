"""pyproject.toml declares what the code imports and imports what it declares; ``avpipe
--version`` and the provenance name the commit; importing avpipe raises no warnings.

Imports are read from the AST of every module (function-level imports included) and from
the ``import`` lines of the Snakefile and ``workflow/**/*.smk``.  Which imports may come from
where:

- ``avpipe/`` and ``workflow/``: runtime dependencies, except the documented optional
  backends (``OPTIONAL``), which must come from their extra and be imported inside a function;
- ``tests/``: runtime dependencies and the ``test`` extra;
- ``scripts/`` (developer tools, not installed with the package): runtime dependencies and
  any extra (``bench`` holds nvidia-ml-py for the GPU busy fraction).
"""

from __future__ import annotations

import ast
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections import defaultdict
from pathlib import Path

import pytest

import avpipe
from avpipe.utils import provenance

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())

# Module -> extra of the optional backends that avpipe imports lazily.
OPTIONAL = {"tensorflow_hub": "tfhub"}
# Distributions of modules that need not be installed to run these tests (optional extras).
NOT_INSTALLED = {"tensorflow_hub": "tensorflow-hub", "pynvml": "nvidia-ml-py"}
# Runtime dependencies that nothing imports, and why they are declared anyway.
NOT_IMPORTED = {
    "snakemake-executor-plugin-slurm": "Snakemake loads it by name (profiles/slurm, executor)",
}
# Calls that import the module named by their first argument.
LOADERS = {"import_module", "importorskip"}
SMK_IMPORT = re.compile(r"^\s*(?:import|from)\s+([A-Za-z_]\w*)", re.MULTILINE)


def norm(name: str) -> str:
    """Distribution name as PEP 503 compares them (``PyYAML`` == ``pyyaml``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_names(reqs: list[str]) -> set[str]:
    return {norm(re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", r).group()) for r in reqs}


RUNTIME = requirement_names(PYPROJECT["project"]["dependencies"])
EXTRAS = {k: requirement_names(v) for k, v in PYPROJECT["project"]["optional-dependencies"].items()}


def loaded_name(call: ast.Call) -> str:
    """``"x"`` for ``importlib.import_module("x")`` or ``pytest.importorskip("x")``, else ``""``."""
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    arg = call.args[0] if call.args else None
    if name in LOADERS and isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return arg.value
    return ""


def python_imports(path: Path) -> dict[str, bool]:
    """Top-level module -> True if every import of it in ``path`` sits inside a function.

    Counts ``import x``, ``from x import y`` and the string argument of
    ``importlib.import_module("x")`` / ``pytest.importorskip("x")``.
    """
    found: dict[str, bool] = {}

    def add(module: str, in_function: bool) -> None:
        top = module.split(".")[0]
        found[top] = found.get(top, True) and in_function

    def visit(node: ast.AST, in_function: bool) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, in_function)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            add(node.module, in_function)
        elif isinstance(node, ast.Call) and loaded_name(node):
            add(loaded_name(node), in_function)
        inner = in_function or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        for child in ast.iter_child_nodes(node):
            visit(child, inner)

    visit(ast.parse(path.read_text(), filename=str(path)), False)
    return found


def third_party(roots: list[Path], local: set[str]) -> dict[str, dict[str, bool]]:
    """Third-party top-level module -> {file: imported only inside functions} under ``roots``."""
    out: dict[str, dict[str, bool]] = defaultdict(dict)
    for root in roots:
        for path in sorted(root.rglob("*.py")) if root.is_dir() else [root]:
            for module, lazy in python_imports(path).items():
                if module not in sys.stdlib_module_names and module not in local:
                    out[module][str(path.relative_to(REPO))] = lazy
    return out


def workflow_imports() -> dict[str, list[str]]:
    """Top-level modules imported by the Snakefile and the rule files (Snakemake syntax)."""
    out: dict[str, list[str]] = defaultdict(list)
    for path in [REPO / "Snakefile", *sorted((REPO / "workflow").rglob("*.smk"))]:
        for module in SMK_IMPORT.findall(path.read_text()):
            if module not in sys.stdlib_module_names and module != "avpipe":
                out[module].append(str(path.relative_to(REPO)))
    return out


def local_modules(root: Path) -> set[str]:
    """Helper modules and packages that tests and scripts import by name (pythonpath)."""
    return {p.stem for p in root.rglob("*.py")} | {p.name for p in root.rglob("*") if p.is_dir()}


DISTRIBUTIONS = importlib.metadata.packages_distributions()


def distributions(module: str) -> set[str]:
    dists = DISTRIBUTIONS.get(module) or [NOT_INSTALLED.get(module, "")]
    if not dists[0]:
        raise AssertionError(
            f"module {module!r} is not installed and has no distribution in NOT_INSTALLED"
        )
    return {norm(d) for d in dists}


def undeclared(imports: dict[str, dict[str, bool]], allowed: set[str]) -> list[str]:
    return [
        f"{module} ({', '.join(sorted(distributions(module)))}) imported by {sorted(files)}"
        for module, files in sorted(imports.items())
        if not distributions(module) & allowed
    ]


PACKAGE_IMPORTS = third_party([REPO / "avpipe"], {"avpipe"})


def test_package_imports_are_runtime_dependencies() -> None:
    runtime_imports = {m: f for m, f in PACKAGE_IMPORTS.items() if m not in OPTIONAL}
    assert undeclared(runtime_imports, RUNTIME) == []


@pytest.mark.parametrize("module", sorted(OPTIONAL))
def test_optional_backends_come_from_their_extra_and_load_lazily(module: str) -> None:
    files = PACKAGE_IMPORTS.get(module, {})
    assert files, f"{module} is listed as optional but avpipe does not import it"
    assert distributions(module) & EXTRAS[OPTIONAL[module]]
    assert not distributions(module) & RUNTIME
    eager = [f for f, lazy in files.items() if not lazy]
    assert eager == [], f"{module} must be imported inside a function: {eager}"


def test_workflow_imports_are_runtime_dependencies() -> None:
    imports = workflow_imports()
    assert {"snakemake", "yaml"} <= set(imports)  # the scan sees the rule files' imports
    assert undeclared({m: dict.fromkeys(f, False) for m, f in imports.items()}, RUNTIME) == []


def test_every_runtime_dependency_is_imported() -> None:
    imported = set().union(
        *(distributions(m) for m in [*PACKAGE_IMPORTS, *workflow_imports()] if m not in OPTIONAL)
    )
    unused = RUNTIME - imported - set(NOT_IMPORTED)
    assert unused == set(), f"declared but imported nowhere in avpipe/ or workflow/: {unused}"
    assert set(NOT_IMPORTED) <= RUNTIME


def test_test_only_packages_stay_out_of_the_runtime() -> None:
    assert {"librosa", "resampy", "xarray"} <= EXTRAS["test"]
    assert not {"librosa", "resampy", "xarray", "torchaudio", "pytest"} & RUNTIME


def test_tests_import_runtime_or_test_dependencies() -> None:
    tests = third_party([REPO / "tests"], {"avpipe"} | local_modules(REPO / "tests"))
    assert undeclared(tests, RUNTIME | EXTRAS["test"]) == []


def test_scripts_import_runtime_or_extra_dependencies() -> None:
    scripts = third_party([REPO / "scripts"], {"avpipe"} | local_modules(REPO / "scripts"))
    assert undeclared(scripts, RUNTIME.union(*EXTRAS.values())) == []


def test_torch_pair_is_pinned_and_documented() -> None:
    pins = dict(
        re.fullmatch(r"(torch|torchvision)==([\d.]+)", r).groups()
        for r in PYPROJECT["project"]["dependencies"]
        if re.match(r"torch(vision)?\b", r)
    )
    assert set(pins) == {"torch", "torchvision"}
    readme = (REPO / "README.md").read_text()
    pair = f"torch=={pins['torch']} torchvision=={pins['torchvision']}"
    assert f"{pair} --index-url https://download.pytorch.org/whl/cpu" in readme
    assert f"{pair} --index-url https://download.pytorch.org/whl/cu1" in readme


def test_version_matches_pyproject() -> None:
    assert avpipe.__version__ == PYPROJECT["project"]["version"]


def git(cwd: Path, *args: str) -> str:
    cmd = ["git", "-c", "user.name=avpipe", "-c", "user.email=dev@avpipe", *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()


def cli_version(root: Path) -> str:
    """``python -m avpipe.cli --version`` with avpipe imported from ``root``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env["PYTHONPATH"] = str(root)
    cmd = [sys.executable, "-m", "avpipe.cli", "--version"]
    r = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, check=True)
    return r.stdout.strip()


def expected_commit(root: Path) -> str:
    dirty = git(root, "status", "--porcelain", "--untracked-files=no")
    return git(root, "rev-parse", "--short", "HEAD") + ("-dirty" if dirty else "")


needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


@needs_git
def test_version_names_the_commit_of_this_checkout() -> None:
    if not (REPO / ".git").exists():
        pytest.skip(f"{REPO} is not a git checkout")
    assert cli_version(REPO) == f"avpipe {avpipe.__version__} ({expected_commit(REPO)})"


def copy_package(dst: Path) -> Path:
    shutil.copytree(REPO / "avpipe", dst / "avpipe", ignore=shutil.ignore_patterns("__pycache__"))
    return dst


@needs_git
def test_version_follows_commits_and_tracked_edits_only(tmp_path: Path) -> None:
    root = copy_package(tmp_path / "checkout")
    git(root, "init", "-q")
    git(root, "add", "avpipe")
    git(root, "commit", "-q", "-m", "first")
    sha = git(root, "rev-parse", "--short", "HEAD")
    assert cli_version(root) == f"avpipe {avpipe.__version__} ({sha})"
    (root / "results").mkdir()
    (root / "results" / "out.txt").write_text("untracked output\n")
    assert cli_version(root) == f"avpipe {avpipe.__version__} ({sha})"
    with (root / "avpipe" / "cli.py").open("a") as fh:
        fh.write("# edited\n")
    assert cli_version(root) == f"avpipe {avpipe.__version__} ({sha}-dirty)"
    git(root, "commit", "-q", "-am", "second")
    assert (
        cli_version(root)
        == f"avpipe {avpipe.__version__} ({git(root, 'rev-parse', '--short', 'HEAD')})"
    )
    assert git(root, "rev-parse", "--short", "HEAD") != sha


@needs_git
def test_version_outside_a_checkout_is_the_version_alone(tmp_path: Path) -> None:
    # A package below, not at, the root of some other repository (a venv inside a project).
    git(tmp_path, "init", "-q")
    (tmp_path / "README").write_text("another project\n")
    git(tmp_path, "add", "README")
    git(tmp_path, "commit", "-q", "-m", "other")
    site = copy_package(tmp_path / "site-packages")
    assert cli_version(site) == f"avpipe {avpipe.__version__}"


def test_provenance_records_the_commit_with_one_git_call(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []
    run = subprocess.run

    def counting_run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        calls.append(cmd)
        return run(cmd, **kwargs)

    provenance.avpipe_commit.cache_clear()
    monkeypatch.setattr(provenance.subprocess, "run", counting_run)
    try:
        first = provenance.package_versions()
        second = provenance.provenance({"a": 1})["versions"]
    finally:
        provenance.avpipe_commit.cache_clear()
    assert first == second
    assert first["avpipe"] == avpipe.__version__
    checkout = Path(avpipe.__file__).resolve().parents[1]  # the tree this process imports
    assert len(calls) == (1 if (checkout / ".git").exists() else 0)
    if calls and shutil.which("git"):
        assert first["avpipe_commit"] == expected_commit(checkout)


def python_w_error(code: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-W", "error", "-c", code]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=False)


def test_import_avpipe_raises_no_warning() -> None:
    r = python_w_error("import avpipe")
    assert r.returncode == 0, r.stderr


def test_every_module_imports_without_warnings() -> None:
    """Every module of the package, as a stage or the workflow would import it."""
    code = (
        "import importlib, pkgutil, avpipe\n"
        "for m in pkgutil.walk_packages(avpipe.__path__, 'avpipe.'):\n"
        "    importlib.import_module(m.name)\n"
    )
    r = python_w_error(code)
    assert r.returncode == 0, r.stderr
