"""Command line of `rose score` (light: no heavy imports here)."""

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    from rose.config import add_arguments
    from rose.score.config import ScoreConfig

    add_arguments(parser, ScoreConfig)
    parser.add_argument("--no-fill", dest="fill_missing", action="store_const", const="false",
                        help="do not compute missing cells: name them and print the commands that would")  # fmt: skip
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rose.config import from_args
    from rose.score.config import ScoreConfig

    config = from_args(ScoreConfig, args)  # checked before the heavy imports
    from rose.score.run import score

    result = score(config)
    print(result.leaderboard_text())
    for message in result.messages:
        print(f"note: {message}")
    for (task, language), champ in result.champions.items():
        print(
            f"champion {task}/{language}: {champ['candidate']} -> models:/{champ['model']}@champion "
            f"(version {champ['version']})"
        )
    print(f"report: {result.report} (also in score run {result.run_id}, artifacts report/)")
    return 0
