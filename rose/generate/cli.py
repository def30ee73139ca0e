"""Command line of `rose generate` (light: no heavy imports here)."""

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rose.errors import RoseError

    raise RoseError("rose generate is not built yet")
