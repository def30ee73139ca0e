"""MLflow entry point ``train``: the same flags as ``rose train`` (see rose/train/config.py)."""

from __future__ import annotations

import argparse
import logging
import sys

from rose import tracking
from rose.errors import RoseError
from rose.train import cli


def main(argv: list[str] | None = None) -> int:
    tracking.adopt_launcher_run()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    parser = argparse.ArgumentParser(prog="train", description="fine-tune a classifier over seeds")
    cli.configure(parser)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except RoseError as exc:
        print(f"train: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
