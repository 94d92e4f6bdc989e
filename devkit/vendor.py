"""Copy the browser assets the app serves (Leaflet, Chart.js, Swagger UI, oidc-client-ts) from node_modules into
functions/static/vendor/, so nothing is loaded from another host at run time.

`make setup` runs it after `npm ci` (the packages are pinned in package.json and package-lock.json); azd runs it
before packaging (azure.yaml, hooks.prepackage). The copied folder is gitignored.

    python -m devkit.vendor [--node-modules DIR] [--dest DIR]
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NODE_MODULES = REPO / "node_modules"
DEST = REPO / "functions" / "static" / "vendor"

# (package, file or folder inside the package, where it goes under DEST): exactly what the pages use.
FILES: tuple[tuple[str, str, str], ...] = (
    ("leaflet", "dist/leaflet.js", "leaflet/leaflet.js"),
    ("leaflet", "dist/leaflet.css", "leaflet/leaflet.css"),
    ("leaflet", "dist/images", "leaflet/images"),
    ("chart.js", "dist/chart.umd.js", "chart.js/chart.umd.js"),
    ("swagger-ui-dist", "swagger-ui.css", "swagger-ui/swagger-ui.css"),
    ("swagger-ui-dist", "swagger-ui-bundle.js", "swagger-ui/swagger-ui-bundle.js"),
    ("swagger-ui-dist", "swagger-ui-standalone-preset.js", "swagger-ui/swagger-ui-standalone-preset.js"),
    # the browser build: one script, its dependency (jwt-decode) inside, the global `oidc`
    ("oidc-client-ts", "dist/browser/oidc-client-ts.min.js", "oidc-client-ts/oidc-client-ts.min.js"),
)


def copy_vendor(node_modules: Path = NODE_MODULES, dest: Path = DEST) -> list[Path]:
    """Replace `dest` with the files of FILES; raises FileNotFoundError naming what is missing (run `npm ci`)."""
    missing = [f"{package}/{inner}" for package, inner, _ in FILES if not (node_modules / package / inner).exists()]
    if missing:
        raise FileNotFoundError(f"not in {node_modules}: {', '.join(missing)} (run `npm ci`)")
    if dest.exists():
        shutil.rmtree(dest)
    written: list[Path] = []
    for package, inner, target in FILES:
        source, out = node_modules / package / inner, dest / target
        out.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, out)
            written.extend(p for p in sorted(out.rglob("*")) if p.is_file())
        else:
            shutil.copyfile(source, out)
            written.append(out)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devkit.vendor", description=__doc__.splitlines()[0])
    parser.add_argument("--node-modules", type=Path, default=NODE_MODULES)
    parser.add_argument("--dest", type=Path, default=DEST)
    args = parser.parse_args(argv)
    try:
        written = copy_vendor(args.node_modules, args.dest)
    except FileNotFoundError as exc:
        print(f"vendor: {exc}", file=sys.stderr)
        return 1
    print(f"vendor: {len(written)} files into {args.dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
