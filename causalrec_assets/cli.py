"""The ``causalrec`` command, for plugin authors and operators.

- ``causalrec plugins``: every installed plugin per stage, with its distribution, version, the
  plugin API version it targets, and its status (ok, or broken with the reason).
- ``causalrec new-plugin --stage STAGE NAME``: an installable plugin package, ready to edit.
- ``causalrec check STAGE NAME``: the conformance kit on an installed plugin.
- ``causalrec run-config STAGE=NAME ...``: the run config that selects plugins, as JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

from causalrec_assets.plugin_api import PLUGIN_API_VERSION, STAGES, parse_api_version
from causalrec_assets.registry import PluginError, PluginInfo, PluginRegistry, get_registry

COLUMNS = ("name", "distribution", "version", "api", "status")


def _quiet_discovery() -> PluginRegistry:
    """The registry, without the discovery's own warnings: the listing says the same, once."""
    logger = logging.getLogger("causalrec.registry")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        return get_registry()
    finally:
        logger.setLevel(level)


def _row(info: PluginInfo) -> tuple[str, ...]:
    return (info.name, info.distribution, info.version, info.api_version or "?", info.status)


def list_plugins(registry: PluginRegistry | None = None) -> str:
    """The table ``causalrec plugins`` prints: one line per plugin, grouped by stage."""
    registry = registry or _quiet_discovery()
    major, minor = parse_api_version(PLUGIN_API_VERSION)
    rows = [_row(i) for stage in STAGES for i in registry.infos.get(stage, {}).values()]
    widths = [max([len(c), *(len(r[k]) for r in rows)]) for k, c in enumerate(COLUMNS[:-1])]

    def line(cells: tuple[str, ...]) -> str:
        return "  " + "  ".join(c.ljust(w) for c, w in zip(cells[:-1], widths, strict=True)) + "  " + cells[-1]

    out = [f"causalrec plugin API {PLUGIN_API_VERSION} (runs plugins written for {major}.0 to {major}.{minor})"]
    out.append(line(tuple(c.upper() for c in COLUMNS)))
    for stage in STAGES:
        infos = registry.infos.get(stage, {})
        out.append(f"{stage}:" + ("" if infos else " (none installed)"))
        out += [line(_row(info)) for _, info in sorted(infos.items())]
    return "\n".join(out)


def plugins_json(registry: PluginRegistry | None = None) -> list[dict[str, Any]]:
    registry = registry or _quiet_discovery()
    return [
        {
            "stage": i.stage,
            "name": i.name,
            "distribution": i.distribution,
            "version": i.version,
            "api_version": i.api_version,
            "target": i.target,
            "ok": i.ok,
            "error": i.error,
            "notes": list(i.notes),
        }
        for stage in STAGES
        for i in registry.infos.get(stage, {}).values()
    ]


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def build_run_config(selections: list[str], params: list[str] | None = None) -> dict[str, Any]:
    """Run config selecting ``STAGE=NAME`` plugins with ``STAGE.KEY=VALUE`` parameters; names
    and parameters are checked against the installed plugins first (PluginError, ValueError)."""
    from causalrec_assets.pipeline import stage_ops

    registry = _quiet_discovery()
    chosen: dict[str, str] = {}
    for item in selections:
        stage, _, name = item.partition("=")
        if stage not in STAGES or not name:
            raise ValueError(f"{item!r}: expected STAGE=NAME with STAGE one of {', '.join(STAGES)}")
        registry.get(stage, name)  # unknown or broken: PluginError naming the installed ones
        chosen[stage] = name
    sections: dict[str, dict[str, Any]] = {stage: {} for stage in chosen}
    for item in params or []:
        key, equals, value = item.partition("=")
        stage, dot, field = key.partition(".")
        if stage not in chosen or not (dot and field and equals):
            raise ValueError(f"{item!r}: expected STAGE.KEY=VALUE for a selected stage ({', '.join(chosen)})")
        sections[stage][field] = _parse_value(value)
    ops: dict[str, Any] = {}
    for stage, name in chosen.items():
        config: dict[str, Any] = {"plugin": name}
        if sections[stage]:
            cls = registry.get(stage, name)
            # Built here so a bad value is named now (pydantic), not when the run reaches the stage.
            config[name] = cls.Config(**sections[stage]).model_dump(exclude_unset=True)
        for op in stage_ops()[stage]:
            ops[op] = {"config": config}
    return {"ops": ops}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="causalrec", description="causalrec plugins: list, scaffold, check.")
    sub = parser.add_subparsers(dest="command", required=True)
    listing = sub.add_parser("plugins", help="list installed plugins per stage, with their status")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.add_argument("--strict", action="store_true", help="exit with status 1 if any plugin is broken")
    new = sub.add_parser("new-plugin", help="scaffold an installable plugin package")
    new.add_argument("--stage", required=True, choices=STAGES, help="the stage the plugin implements")
    new.add_argument("name", help="the plugin's name (what run config selects), e.g. my_ranker")
    new.add_argument("--directory", "-d", help="where to write the package (default ./causalrec-<name>)")
    new.add_argument("--force", action="store_true", help="write into a non-empty directory")
    check = sub.add_parser("check", help="run the conformance kit on an installed plugin")
    check.add_argument("stage", choices=STAGES)
    check.add_argument("name")
    check.add_argument("--config", default="{}", help="the plugin's parameters as JSON (default: its defaults)")
    check.add_argument("--seed", type=int, default=0, help="seed of the generated data")
    runcfg = sub.add_parser("run-config", help="print the run config that selects plugins, as JSON")
    runcfg.add_argument("selections", nargs="+", metavar="STAGE=NAME")
    runcfg.add_argument("--param", action="append", default=[], metavar="STAGE.KEY=VALUE")
    args = parser.parse_args(argv)

    if args.command == "plugins":
        registry = _quiet_discovery()
        print(json.dumps(plugins_json(registry), indent=2) if args.json else list_plugins(registry))
        return 1 if args.strict and registry.broken() else 0
    if args.command == "new-plugin":
        from causalrec_assets.scaffold import ScaffoldError, new_plugin

        try:
            path = new_plugin(args.stage, args.name, args.directory, force=args.force)
        except ScaffoldError as exc:
            print(f"causalrec new-plugin: {exc}", file=sys.stderr)
            return 2
        print(f"wrote {path}\nnext: cd {path} && pip install -e '.[test]' && pytest && causalrec plugins")
        return 0
    if args.command == "check":
        from causalrec_assets.testing import check_conformance

        try:
            cls = _quiet_discovery().get(args.stage, args.name)
            report = check_conformance(cls, json.loads(args.config), seed=args.seed)
        except (PluginError, ValueError) as exc:
            print(f"causalrec check: {exc}", file=sys.stderr)
            return 2
        print(report.describe())
        return 0 if report.ok else 1
    if args.command == "run-config":
        try:
            print(json.dumps(build_run_config(args.selections, args.param), indent=2))
        except (PluginError, ValueError) as exc:
            print(f"causalrec run-config: {' '.join(str(exc).split())}", file=sys.stderr)
            return 2
        return 0
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
