"""The ``causalrec`` command: ``causalrec plugins`` lists every installed plugin per stage."""

from __future__ import annotations

import argparse

from causalrec_assets.plugin_api import PLUGIN_API_VERSION, STAGES
from causalrec_assets.registry import get_registry


def list_plugins() -> str:
    registry = get_registry()
    lines = [f"causalrec plugin API {PLUGIN_API_VERSION}"]
    for stage in STAGES:
        lines.append(f"{stage}:")
        for name, info in sorted(registry.infos.get(stage, {}).items()):
            status = "ok" if info.ok else f"broken: {info.error}"
            lines.append(f"  {name:<20} {info.distribution} {info.version}  api {info.api_version or '?'}  {status}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="causalrec", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("plugins", help="list installed plugins per stage, with their status")
    args = parser.parse_args(argv)
    if args.command == "plugins":
        print(list_plugins())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
