"""The package's shape: lower layers never import higher ones, one module per console script,
and docs/architecture.md names every folder of the tree."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Lowest first. A module may import its own layer and the layers before it, never a later one.
LAYERS = (
    "gecko_jax.core",
    "gecko_jax.text",
    "gecko_jax.models",
    "gecko_jax.model_io",
    "gecko_jax.encoder",
    "gecko_jax.data",
    "gecko_jax.search",
    "gecko_jax.llm",
    "gecko_jax.fret",
    "tasks",
    "gecko_jax.training",
    "gecko_jax.evaluation",
    "gecko_jax.recipes",
    "gecko_jax.cli",
)


def _layer(module: str) -> int:
    for rank, prefix in enumerate(LAYERS):
        if module == prefix or module.startswith(prefix + "."):
            return rank
    if module == "gecko_jax":  # the package root: its lazy `Encoder` attribute
        return LAYERS.index("gecko_jax.encoder")
    raise AssertionError(f"{module} is in no layer of {LAYERS}")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    base = ROOT / name.replace(".", "/")
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _imports(path: Path, own: str | None = None) -> set[str]:
    """Every project module ``path`` (the module ``own``) imports, lazily or not."""
    own = own or _module_name(path)
    package = own if path.name == "__init__.py" else own.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:  # `from pkg import module` imports the module
                full = f"{base}.{alias.name}"
                found.add(full if _is_module(full) else base)
    return {name for name in found if name.split(".")[0] in ("gecko_jax", "tasks")}


def _project_files() -> list[Path]:
    return sorted([*ROOT.glob("gecko_jax/**/*.py"), *ROOT.glob("tasks/**/*.py")])


def test_lower_layers_never_import_higher_ones() -> None:
    upward = []
    for path in _project_files():
        own = _module_name(path)
        for imported in _imports(path):
            if _layer(imported) > _layer(own):
                upward.append(f"{own} imports {imported}")
    assert not upward, "upward imports:\n" + "\n".join(sorted(upward))


def test_the_import_check_sees_lazy_and_relative_imports(tmp_path: Path) -> None:
    """The check above would pass vacuously if it missed imports inside functions."""
    probe = tmp_path / "probe.py"
    probe.write_text(
        "def f():\n    from gecko_jax.cli import demo\n    from ..text import formats\n"
    )
    found = _imports(probe, own="gecko_jax.core.probe")
    assert found == {"gecko_jax.cli.demo", "gecko_jax.text.formats"}
    assert _layer("gecko_jax.cli.demo") > _layer("gecko_jax.core.probe")


def _console_scripts() -> dict[str, str]:
    setup = (ROOT / "setup.py").read_text()
    return dict(re.findall(r'"(gecko-[\w-]+)=([\w.]+):main"', setup))


def test_one_module_per_console_script() -> None:
    scripts = _console_scripts()
    assert len(scripts) >= 8
    modules = list(scripts.values())
    assert len(set(modules)) == len(modules), "two console scripts share a module"
    for script, module in scripts.items():
        assert module.startswith("gecko_jax.cli."), f"{script} -> {module} is outside cli/"
        assert _is_module(module), f"{script} -> {module} does not exist"


def _tree_folders() -> set[str]:
    folders = set()
    for top in ("gecko_jax", "tasks"):
        for init in (ROOT / top).glob("**/__init__.py"):
            folders.add(init.parent.relative_to(ROOT).as_posix() + "/")
    for top in ("gin_configs", "tests", "benchmarks", "notebooks", "docs", "scripts"):
        folders.add(f"{top}/")
    return folders


def test_the_architecture_doc_names_every_folder_and_only_real_ones() -> None:
    doc = (ROOT / "docs" / "architecture.md").read_text()
    named = set(re.findall(r"^\| `([\w/]+/)` \|", doc, re.M))
    assert named == _tree_folders(), (
        f"missing from the doc: {sorted(_tree_folders() - named)}; "
        f"not in the tree: {sorted(named - _tree_folders())}"
    )


def test_the_architecture_table_names_every_architecture() -> None:
    from gecko_jax.models.architectures import TABLE
    from gecko_jax.models.config import ARCHITECTURES

    assert tuple(TABLE) == ARCHITECTURES
