"""Command line of ``rose tune`` (light: no heavy imports here)."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    from rose.config import add_arguments
    from rose.train.config import TuneConfig

    add_arguments(parser, TuneConfig)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rose.config import from_args
    from rose.train.config import TuneConfig

    config = from_args(TuneConfig, args)  # checked before the heavy imports
    from rose.train.tune import tune

    result = tune(config)
    print(f"study {result.study_name} ({result.n_trials} trials) in {result.storage}; tune run {result.parent_run_id}")
    if result.best_value is None:
        print("no trial finished yet")
    else:
        print(f"best dev macro-F1 {result.best_value:.4f}; train with: {result.train_flags()}")
    return 0
