"""Command line of ``rose pipeline`` (light: no heavy imports here)."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default="configs/demo.yaml", help="study YAML file (default: configs/demo.yaml)")
    parser.add_argument("--executor", default="local", choices=["local", "ray"], help="where units run")
    parser.add_argument(
        "--max-parallel",
        "--max_parallel",
        type=int,
        default=1,
        dest="max_parallel",
        help="units running at once with the local executor (default: 1, in this process)",
    )
    parser.add_argument(
        "--dry-run",
        "--dry_run",
        nargs="?",
        const="true",
        default="false",
        dest="dry_run",
        metavar="BOOL",
        help="print the plan (stages, counts, what is done) and run nothing",
    )
    parser.add_argument(
        "--ray-address",
        "--ray_address",
        default=None,
        dest="ray_address",
        help="address of a running Ray cluster (default: start a local one)",
    )
    parser.add_argument(
        "--gpus-per-generator",
        "--gpus_per_generator",
        type=float,
        default=0.0,
        dest="gpus_per_generator",
        help="GPUs each generation task asks Ray for",
    )
    parser.add_argument(
        "--estimate",
        action="store_true",
        help="with --dry-run: the work per kind of unit and the expected wall time on --workers and "
        "--gpus (seconds per unit from the tracking store, or --unit-seconds)",
    )
    parser.add_argument(
        "--unit-seconds",
        "--unit_seconds",
        default="",
        dest="unit_seconds",
        metavar="KIND=S,...",
        help="seconds per unit for --estimate, e.g. generate=1800,train=600,evaluate=15,score=120 "
        "(a train unit is all its seeds)",
    )
    parser.add_argument("--workers", type=int, default=8, help="CPU slots for --estimate (default: 8)")
    parser.add_argument("--gpus", type=float, default=0.0, help="GPUs for --estimate (default: 0)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rose.config import parse_bool
    from rose.pipeline.run import leaderboards, run_pipeline, where_to_look

    args.dry_run = parse_bool(args.dry_run)
    result = run_pipeline(
        args.config,
        executor=args.executor,
        max_parallel=args.max_parallel,
        dry_run=args.dry_run,
        ray_address=args.ray_address,
        gpus_per_generator=args.gpus_per_generator,
        estimate=args.estimate,
        unit_seconds=args.unit_seconds,
        workers=args.workers,
        gpus=args.gpus,
    )
    if args.dry_run:
        print(result.plan)
        return 0
    if result.score_runs:
        print(leaderboards(result.score_runs))
    for note in result.notes:
        print(f"note: {note}")
    print(f"\nstudy finished in {result.wall_s:.0f} s ({result.ran} unit(s) run, {result.skipped} already done)")
    if result.stage_s:
        print(f"time per stage: {result.time_split()}")
        if result.overhead_s:
            print(f"  of which outside the units' own work: {result.overhead()}")
    print(where_to_look(result.experiment))
    if result.ok:
        return 0
    for task, reason in result.failed:
        print(f"FAILED {task}: {reason}")
    print(f"{len(result.left)} unit(s) not run. Resume the study (what is done is kept): {result.resume}")
    return 1
