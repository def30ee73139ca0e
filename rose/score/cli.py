"""Command line of `rose score` (light: no heavy imports here)."""

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rose.errors import RoseError

    raise RoseError("rose score is not built yet")
