"""``causalrec new-plugin``: an installable plugin package for one stage, ready to edit.

The package holds a ``pyproject.toml`` whose entry point registers the plugin, a working
example implementation with docstrings (``src/<module>/plugin.py``), a README, and tests that
run the conformance kit and pass as generated. Templates live in ``templates/``
(``string.Template`` syntax: ``${name}``).
"""

from __future__ import annotations

import importlib.util
import keyword
import re
from dataclasses import dataclass
from importlib import resources
from importlib.metadata import PackageNotFoundError, entry_points, version
from pathlib import Path
from string import Template

from causalrec_assets.plugin_api import PLUGIN_API_VERSION, STAGE_BASES, STAGES, parse_api_version
from causalrec_assets.registry import BUILTIN_DISTRIBUTION

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,48}$")

# What the class name ends with, per stage (MyThing -> MyThingRanking).
CLASS_SUFFIX: dict[str, str] = {
    "ingest": "Ingest",
    "validate": "Validate",
    "embed": "Embed",
    "structure": "Structure",
    "effects": "Effects",
    "ranking": "Ranking",
}

# Third-party packages an example implementation imports besides causalrec's own dependencies.
EXTRA_DEPENDENCIES: dict[str, tuple[str, ...]] = {"structure": ("scipy",)}


class ScaffoldError(ValueError):
    """The plugin cannot be generated as asked; the message says why and what to do."""


@dataclass(frozen=True)
class PluginNames:
    """Every name the generated package uses, derived from the stage and the plugin name."""

    stage: str
    name: str  # entry-point name: what run config selects
    dist: str  # distribution name on PyPI
    module: str  # import name
    cls: str
    config_cls: str
    title: str

    @classmethod
    def of(cls, stage: str, name: str) -> PluginNames:
        camel = "".join(part.capitalize() for part in name.split("_") if part)
        suffix = CLASS_SUFFIX[stage]
        return cls(
            stage=stage,
            name=name,
            dist="causalrec-" + name.replace("_", "-"),
            module=f"causalrec_{name}",
            cls=camel if camel.endswith(suffix) else camel + suffix,
            config_cls=f"{camel}Config",
            title=" ".join(part.capitalize() for part in name.split("_") if part),
        )


def check_request(stage: str, name: str) -> PluginNames:
    """The names to use, or a ScaffoldError saying what is wrong with the request."""
    from causalrec_assets.registry import ENTRY_POINT_PREFIX, RESERVED_NAMES

    if stage not in STAGES:
        raise ScaffoldError(f"unknown stage {stage!r}; choose one of {', '.join(STAGES)}")
    if not NAME_PATTERN.match(name) or keyword.iskeyword(name):
        raise ScaffoldError(
            f"plugin name {name!r} must be lower case letters, digits and underscores, starting with a letter "
            "(it becomes the run config key and part of the module name)"
        )
    if name in RESERVED_NAMES:
        raise ScaffoldError(f"the name {name!r} is reserved by causalrec's run config; choose another")
    names = PluginNames.of(stage, name)
    taken = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_PREFIX + stage)}
    if name in taken:
        owner = taken[name].dist.name if taken[name].dist is not None else taken[name].value
        raise ScaffoldError(
            f"the {stage} stage already has a plugin named {name!r} (from {owner}); choose another name"
        )
    if importlib.util.find_spec(names.module) is not None:
        raise ScaffoldError(f"a module named {names.module} is already importable here; choose another plugin name")
    return names


def causalrec_requirement() -> str:
    """What a plugin depends on: this distribution (never the unrelated ``causalrec`` on the
    index), from this minor version up to the next major."""
    try:
        installed = version(BUILTIN_DISTRIBUTION)
    except PackageNotFoundError:  # a source tree that is not installed
        installed = "0.4"
    major, minor = (int(p) for p in installed.split(".")[:2])
    return f"{BUILTIN_DISTRIBUTION}>={major}.{minor},<{major + 1}"


def render(template: str, values: dict[str, str]) -> str:
    text = resources.files(__package__).joinpath("templates", template).read_text(encoding="utf-8")
    return Template(text).substitute(values)


def new_plugin(stage: str, name: str, directory: str | Path | None = None, *, force: bool = False) -> Path:
    """Write the package for plugin ``name`` of ``stage`` into ``directory`` (default
    ``./causalrec-<name>``) and return its path."""
    names = check_request(stage, name)
    target = Path(directory) if directory is not None else Path.cwd() / names.dist
    if target.exists() and any(target.iterdir()) and not force:
        raise ScaffoldError(f"{target} exists and is not empty; pick another directory (or --force to overwrite)")
    major, minor = parse_api_version(PLUGIN_API_VERSION)
    deps = ", ".join(f'"{d}"' for d in (causalrec_requirement(), *EXTRA_DEPENDENCIES.get(stage, ())))
    values = {
        "stage": stage,
        "name": name,
        "dist": names.dist,
        "module": names.module,
        "cls": names.cls,
        "config_cls": names.config_cls,
        "title": names.title,
        "base": STAGE_BASES[stage].__name__,
        "api_version": f"{major}.{minor}",
        "api_major": str(major),
        "api_minor": str(minor),
        "dependencies": deps,
        "run_config_yaml": _run_config_yaml(stage, name),
        "ops_note": _ops_note(stage),
    }
    files = {
        "pyproject.toml": "pyproject.toml.tmpl",
        "README.md": "README.md.tmpl",
        f"src/{names.module}/__init__.py": "init.py.tmpl",
        f"src/{names.module}/plugin.py": f"plugin_{stage}.py.tmpl",
        f"tests/test_{names.module}.py": "test_plugin.py.tmpl",
    }
    for relative, template in files.items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(template, values), encoding="utf-8")
    return target


def _run_config_yaml(stage: str, name: str) -> str:
    from causalrec_assets.pipeline import stage_ops

    lines = ["ops:"]
    for op in stage_ops()[stage]:
        lines += [f"  {op}:", "    config:", f"      plugin: {name}", f"      {name}: {{}}"]
    return "\n".join(lines)


def _ops_note(stage: str) -> str:
    from causalrec_assets.pipeline import stage_ops

    ops = stage_ops()[stage]
    if len(ops) == 1:
        return ""
    return (
        f"The {stage} stage's plugin runs in {len(ops)} ops (its checks and its report): give each the same config.\n"
    )
