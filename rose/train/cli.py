"""Command line of ``rose train`` (light: no heavy imports here).

``rose train --task topic --language en --data <run id | file | human:../shared/data> --seeds 1,2,3
--eval human:../shared/data`` trains once per seed and prints the mean and std of the final metrics.
"""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    from rose.config import add_arguments
    from rose.train.config import TrainConfig

    add_arguments(parser, TrainConfig)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rose.config import from_args
    from rose.train.config import TrainConfig

    config = from_args(TrainConfig, args)  # checked before the heavy imports
    from rose.train.run import train

    result = train(config)
    print(f"parent run {result.parent_run_id} ({len(result.seeds)} seeds)")
    for key in sorted(k for k in result.summary if k.endswith("_mean") and "macro_f1" in k or "accuracy_mean" in k):
        std = result.summary[key[: -len("_mean")] + "_std"]
        print(f"  {key[: -len('_mean')]}: {result.summary[key]:.4f} ± {std:.4f}")
    if result.registered:
        print(f"registered {result.registered}")
    return 0
