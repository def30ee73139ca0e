"""Command line of ``rose generate`` (light: no torch, transformers or mlflow at import time)."""

from __future__ import annotations

import argparse

EXAMPLE = (
    "example: rose generate --task topic --language cy --generator smollm2-135m-instruct "
    "--strategy target_demos --per-label 5"
)


def configure(parser: argparse.ArgumentParser) -> None:
    from rose.config import add_arguments
    from rose.generate.config import GenerateConfig

    parser.epilog = EXAMPLE
    add_arguments(parser, GenerateConfig)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rose.config import from_args
    from rose.generate.config import GenerateConfig

    config = from_args(GenerateConfig, args)  # checked before the heavy imports
    from rose.generate.run import generate

    result = generate(config)
    print(f"run id: {result.run_id}{' (identical finished run reused)' if result.reused else ''}")
    print(f"dataset: {result.dataset_path}")
    for label, kept in result.kept.items():
        gap = result.shortfall.get(label, 0)
        print(f"  {label}: {kept} kept" + (f", {gap} short" if gap else ""))
    return 0
