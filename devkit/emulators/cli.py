"""`python -m devkit emulators`: only Azurite and the Cosmos server, on the ports of COSMOS and ANALYTICS_STORAGE
(the environment's, else local.settings.json's) unless flags say otherwise."""
from __future__ import annotations

import argparse
import sys
import threading

from devkit.emulators.launcher import EmulatorStartError, running_emulators
from devkit.local_settings import blob_port, cosmos_port, local_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--azurite-port", type=int)
    parser.add_argument("--cosmos-port", type=int)


def main(args: argparse.Namespace) -> int:
    values = local_settings()
    try:
        with running_emulators(args.azurite_port or blob_port(values), args.cosmos_port or cosmos_port(values)) as (
            azurite, cosmos,
        ):
            print(f"azurite blob on 127.0.0.1:{azurite.port} ({azurite.started_in_s:.2f} s), "
                  f"cosmos on 127.0.0.1:{cosmos.port} ({cosmos.started_in_s:.2f} s); Ctrl-C stops them", flush=True)
            try:
                threading.Event().wait()
            except KeyboardInterrupt:
                pass
    except EmulatorStartError as exc:
        print(f"devkit emulators: {exc}", file=sys.stderr)
        return 1
    return 0
