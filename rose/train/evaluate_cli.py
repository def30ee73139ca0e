"""Command line of ``rose evaluate`` (light: no heavy imports here).

``rose evaluate --train-run <train setting run> --data <generate run id>,human:../shared/data`` computes the
cross-evaluation cells of a trained setting on datasets: the same function the pipeline's evaluate units and
``rose score``'s filling of missing cells call.
"""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    from rose.config import add_arguments
    from rose.train.config import EvaluateConfig

    add_arguments(parser, EvaluateConfig)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rose.config import from_args
    from rose.train.cells import evaluate_cells
    from rose.train.config import EvaluateConfig

    config = from_args(EvaluateConfig, args)
    for ref, run_id in zip(config.data, evaluate_cells(config.experiment, config.train_run, config.data), strict=True):
        print(f"cell on {ref}: evaluate run {run_id}")
    return 0
