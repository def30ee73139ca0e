"""Command line of `rose pipeline` (light: no heavy imports here)."""

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rose.errors import RoseError

    raise RoseError("rose pipeline is not built yet")
