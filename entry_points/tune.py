"""MLflow entry point ``tune``: the same flags as ``rose tune`` (see rose/train/config.py)."""

from __future__ import annotations

import argparse
import logging
import sys

from rose import tracking
from rose.errors import RoseError
from rose.train import tune_cli as cli


def main(argv: list[str] | None = None) -> int:
    tracking.adopt_launcher_run()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    parser = argparse.ArgumentParser(prog="tune", description="search training hyperparameters with Optuna")
    cli.configure(parser)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except RoseError as exc:
        print(f"tune: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
