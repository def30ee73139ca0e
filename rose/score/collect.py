"""Read a study's runs from MLflow (one search query per stage) and pick the cells that may be compared.

:func:`collect` reads the generate runs, the train runs (settings and seeds) and the cells (``evaluate`` runs, see
:mod:`rose.train.cells`) of the tasks and languages: three searches in all. :func:`select` then decides, per case,
which classifier of each candidate counts and which cells: only cells of one training setting (classifier,
protocol, training settings: ``rose.setting``), of classifiers trained on each candidate's current dataset, computed
on the current datasets of the other candidates (and on one human test set). It names what it leaves out (stale
cells, trainings of another setting) and the cells still missing, which :func:`fill` computes through the same
function as the pipeline's evaluate units.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, field

import pandas as pd

from rose import tracking
from rose.errors import RoseError
from rose.generated_data import HUMAN_NAME, HUMAN_PREFIX
from rose.tasks import same_task
from rose.train import cells as cells_lib

log = logging.getLogger(__name__)

INTRINSIC = "intrinsic/"
TOOL_TAG = "rose.intrinsic."  # on a generate run: rose.intrinsic.<group> = what measured that group of metrics
HUMAN = HUMAN_NAME
CASE = ["task", "language"]
COUNT = "data/count/"
SHOWN = 6  # stale cells named one by one, then counted


@dataclass
class Tracked:
    """The tables of one case that score computes with.

    ``generate``: one row per candidate (its current generate run): task, language, candidate, run_id, generator,
    strategy, start_time and every ``intrinsic/<name>`` metric as column ``<name>``. ``seeds``: one row per seed run
    of the chosen classifiers: task, language, candidate, seed, run_id, dev_f1, human_f1, data_run_id. ``evals``:
    the long cross-evaluation table: task, language, train_candidate, eval_candidate, seed, run_id (the cell run),
    macro_f1. ``baseline``: the human-data baseline's human-test macro-F1 per seed (empty without one).
    """

    generate: pd.DataFrame
    seeds: pd.DataFrame
    evals: pd.DataFrame
    messages: list[str] = field(default_factory=list)
    baseline: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))
    human_ref: str = ""  # the human test set the case is judged on (``human:<folder>``), "" without one


@dataclass
class Store:
    """Every run :func:`collect` read: generate runs, train setting runs, train seed runs, cells (one row per seed)."""

    generate: pd.DataFrame
    trains: pd.DataFrame
    seed_runs: pd.DataFrame
    cells: pd.DataFrame
    every_generate: pd.DataFrame = field(default_factory=pd.DataFrame)  # older generate runs too

    def case(self, task: str, language: str) -> Store:
        def pick(df: pd.DataFrame) -> pd.DataFrame:
            if df.empty:
                return df
            return df[(df["task"] == task) & (df["language"] == language)].reset_index(drop=True)

        return Store(pick(self.generate), pick(self.trains), pick(self.seed_runs), pick(self.cells),
                     pick(self.every_generate))  # fmt: skip

    def cases(self) -> list[tuple[str, str]]:
        return sorted(set(zip(self.generate["task"], self.generate["language"], strict=True)))


@dataclass
class Todo:
    """A cell the case needs and the store lacks."""

    train_run_id: str
    data_ref: str
    what: str  # "<train candidate> on <dataset>"


@dataclass
class Selection:
    tracked: Tracked
    ready: list[str]
    todo: list[Todo]


GEN_COLS = ["task", "language", "candidate", "task_digest", "run_id", "generator", "strategy", "start_time"]
TRAIN_COLS = ["task", "language", "run_id", "train_data", "data_run_id", "setting", "classifier", "protocol",
              "start_time", "counts", "human_evals"]  # fmt: skip
SEED_COLS = ["task", "language", "parent", "seed", "run_id", "dev_f1"]
CELL_COLS = ["task", "language", "run_id", "train_run_id", "dataset", "eval_set", "data_ref", "start_time", "seed",
             "macro_f1"]  # fmt: skip


def _filters(values: list[str]) -> str | None:
    return values[0] if len(values) == 1 and values[0] != "all" else None


def _keep(df: pd.DataFrame, values: list[str], column: str) -> pd.DataFrame:
    return df if not values or "all" in values else df[df[column].isin(values)]


def _newest(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    if df.empty:
        return df
    return df.sort_values("start_time").drop_duplicates(keys, keep="last").reset_index(drop=True)


def _human_evals(param: str | None) -> list[str]:
    """The ``human:<source>`` sets of a train run's ``eval`` param (a JSON list, as :func:`tracking.log_params`
    writes it): the human test sets its classifiers were evaluated on when trained (``rose train --eval``)."""
    try:
        refs = json.loads(param) if param else []
    except ValueError:
        refs = [param]
    return [r for r in refs if isinstance(r, str) and r.strip().startswith(HUMAN_PREFIX)]


def _int(value: str | None) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def collect(experiment: str, tasks: list[str], languages: list[str], candidates: list[str] = (),
            task_digests: dict[str, str] | None = None) -> Store:  # fmt: skip
    """Query the generate runs, the train runs and the cells of the tasks and languages (three searches).

    ``task_digests`` (task name -> :attr:`rose.tasks.Task.digest`, for tasks given as task files) keeps only the
    runs of that content; runs that carry one task name with different contents otherwise are refused in one line.
    """
    where = {"task": _filters(tasks), "language": _filters(languages)}
    found = {stage: _of_tasks(tracking.search_runs(experiment, stage=stage, **where), task_digests or {})
             for stage in ("generate", "train", "evaluate")}  # fmt: skip
    same_task([*found["generate"], *found["train"]], f"the runs of experiment {experiment!r}")

    def scoped(df: pd.DataFrame) -> pd.DataFrame:
        return _keep(_keep(df, tasks, "task"), languages, "language").reset_index(drop=True)

    gen_rows = []
    for run in found["generate"]:
        t, m = run.data.tags, run.data.metrics
        gen_rows.append({
            "task": t.get("rose.task"), "language": t.get("rose.language"), "candidate": t.get("rose.candidate"),
            "task_digest": t.get("rose.task_digest", ""), "run_id": run.info.run_id, "generator": t.get("rose.generator", ""), "strategy": t.get("rose.strategy", ""),
            "start_time": run.info.start_time, "revision_acceptance_logged": m.get("revision_acceptance"),
            "intrinsic_tools": {k[len(TOOL_TAG):]: v for k, v in t.items() if k.startswith(TOOL_TAG)},
            **{k[len(INTRINSIC):]: v for k, v in m.items() if k.startswith(INTRINSIC)},
        })  # fmt: skip
    generate = pd.DataFrame(gen_rows, columns=None if gen_rows else GEN_COLS)
    generate = generate[generate["candidate"].notna()] if len(generate) else generate
    if candidates:
        known = sorted(set(generate["candidate"])) if len(generate) else []
        unknown = [c for c in candidates if c not in known]
        if unknown:
            raise RoseError(
                f"no finished generate run of candidate(s) {', '.join(unknown)} in experiment {experiment!r} for "
                f"{','.join(tasks)}/{','.join(languages)}: known candidates are {', '.join(known) or 'none'}"
            )
        generate = generate[generate["candidate"].isin(candidates)]
    every = scoped(generate)
    generate = _newest(every, CASE + ["candidate"])

    train_rows, seed_rows = [], []
    for run in found["train"]:
        t, m = run.data.tags, run.data.metrics
        base = {"task": t.get("rose.task"), "language": t.get("rose.language"), "run_id": run.info.run_id}
        if t.get("rose.role") == "seed":
            seed_rows.append({**base, "parent": t.get("mlflow.parentRunId"), "seed": _int(t.get("rose.seed")),
                              "dev_f1": m.get("dev/macro_f1")})  # fmt: skip
        elif t.get("rose.role") == "setting":
            classifier, protocol = t.get("rose.classifier", ""), t.get("rose.protocol", "default")
            train_rows.append({
                **base, "train_data": t.get("rose.train_data") or t.get("rose.candidate"),
                "data_run_id": t.get("rose.data_run_id"), "classifier": classifier, "protocol": protocol,
                "setting": t.get("rose.setting") or f"{classifier}|{protocol}", "start_time": run.info.start_time,
                "counts": {k[len(COUNT):]: int(v) for k, v in m.items() if k.startswith(COUNT)},
                "human_evals": _human_evals(run.data.params.get("eval")),
            })  # fmt: skip
    trains = scoped(pd.DataFrame(train_rows, columns=TRAIN_COLS))
    seed_runs = scoped(pd.DataFrame(seed_rows, columns=SEED_COLS))

    cell_rows = []
    for run in found["evaluate"]:
        t = run.data.tags
        base = {"task": t.get("rose.task"), "language": t.get("rose.language"), "run_id": run.info.run_id,
                "train_run_id": t.get("rose.train_run_id"), "dataset": t.get("rose.dataset"),
                "eval_set": t.get("rose.eval_set"), "data_ref": run.data.params.get("data", t.get("rose.dataset")),
                "start_time": run.info.start_time}  # fmt: skip
        for seed, values in cells_lib.seed_scores(run.data.metrics).items():
            if "macro_f1" in values:
                cell_rows.append({**base, "seed": seed, "macro_f1": values["macro_f1"]})
    cells = scoped(pd.DataFrame(cell_rows, columns=CELL_COLS))
    return Store(generate, trains, seed_runs, cells, every)


def _of_tasks(runs: list, digests: dict[str, str]) -> list:
    """``runs`` less those of a task named in ``digests`` with other contents (another ``rose.task_digest``)."""
    keep = [r for r in runs if digests.get(r.data.tags.get("rose.task"), r.data.tags.get("rose.task_digest"))
            == r.data.tags.get("rose.task_digest")]  # fmt: skip
    if len(keep) < len(runs):
        log.info("left out %d run(s) of an older content of task(s) %s", len(runs) - len(keep), ", ".join(digests))
    return keep


def select(store: Store, task: str, language: str, experiment: str, *, train_runs: list[str] = (),
           human_test: str = "") -> Selection:  # fmt: skip
    """The classifiers and cells of one case that may be compared (``store`` restricted to the case).

    ``train_runs`` names the train setting runs to use (the pipeline passes its own); without it, each candidate's
    newest training on its current dataset with the setting most candidates share. ``human_test`` (``human:<src>``)
    names the human test set; without it, the human test set most of the chosen classifiers were evaluated on.
    Raises RoseError when fewer than two candidates can be scored, or when ``train_runs`` mixes settings.
    """
    gen, messages = store.generate, []
    if gen.empty:
        raise RoseError(
            f"no finished generate runs for task {task!r} and language {language!r} in experiment {experiment!r}: "
            f"run `rose generate --task {task} --language {language} --generator <model> --strategy <strategy>` "
            "for two or more generators or strategies first (or `rose data import` datasets made elsewhere)"
        )
    if train_runs:  # the datasets the named classifiers were trained on are the candidates' datasets
        named = store.trains[store.trains["run_id"].isin(list(train_runs))]
        data_runs = set(named["data_run_id"].dropna())
        every = store.every_generate if len(store.every_generate) else gen
        gen = _newest(pd.concat([every[every["run_id"].isin(data_runs)],
                                 gen[~gen["candidate"].isin(named["train_data"])]]), ["candidate"])  # fmt: skip
    current = dict(zip(gen["candidate"], gen["run_id"], strict=True))
    chosen, baseline = _choose_trains(store.trains, current, train_runs, task, language, experiment, messages)
    ready = [c for c in gen["candidate"] if c in chosen]
    _check_ready(gen, ready, task, language, messages)
    _check_counts(store.trains, chosen, baseline, task, language, messages)
    human_key, human_ref = _human_set(store, [*chosen.values(), *([baseline] if baseline else [])], human_test,
                                      task, language)  # fmt: skip
    wanted: dict[tuple[str, str], tuple[str, str, str]] = {}  # (train run, dataset key) -> (candidate, on, ref)
    for cand in ready:
        for other in ready:
            if other != cand:
                wanted[chosen[cand], current[other]] = (cand, other, current[other])
        if human_key:
            wanted[chosen[cand], human_key] = (cand, HUMAN, human_ref)
    if baseline and human_key:
        wanted[baseline, human_key] = (HUMAN, HUMAN, human_ref)
    cells = store.cells[store.cells["train_run_id"].isin({t for t, _ in wanted})]
    cells = _newest_cells(cells)
    have = set(zip(cells["train_run_id"], cells["dataset"], strict=True))
    _name_stale(cells, have, wanted, current, chosen, human_key, messages)
    todo = [Todo(t, ref, f"{cand} on {on}") for (t, key), (cand, on, ref) in wanted.items() if (t, key) not in have]
    names = {run: cand for cand, run in chosen.items()} | ({baseline: HUMAN} if baseline else {})
    used = cells.loc[[(t, d) in wanted for t, d in zip(cells["train_run_id"], cells["dataset"], strict=True)]]
    used = used.assign(train_candidate=used["train_run_id"].map(names),
                       eval_candidate=[wanted[t, d][1] for t, d in zip(used["train_run_id"], used["dataset"],
                                                                         strict=True)])  # fmt: skip
    human_rows = used[(used["eval_candidate"] == HUMAN) & (used["train_candidate"] != HUMAN)]
    human_f1 = {(r.train_candidate, r.seed): r.macro_f1 for r in human_rows.itertuples()}
    seed_runs = store.seed_runs[store.seed_runs["parent"].isin(set(chosen.values()))]
    seeds = seed_runs.assign(candidate=seed_runs["parent"].map(names))
    seeds = seeds.assign(human_f1=[human_f1.get((c, s)) for c, s in zip(seeds["candidate"], seeds["seed"],
                                                                       strict=True)],
                         data_run_id=seeds["candidate"].map(current))  # fmt: skip
    seeds = seeds.sort_values(["candidate", "seed"]).drop_duplicates(["candidate", "seed"], keep="last")
    seeds = seeds[["task", "language", "candidate", "seed", "run_id", "dev_f1", "human_f1", "data_run_id"]]
    evals = used[(used["eval_candidate"] != HUMAN)]
    evals = evals[["task", "language", "train_candidate", "eval_candidate", "seed", "run_id", "macro_f1"]]
    base = used[(used["train_candidate"] == HUMAN)].set_index("seed")["macro_f1"] if baseline else None
    tracked = Tracked(gen, seeds.reset_index(drop=True), evals.reset_index(drop=True), messages,
                      base if base is not None else pd.Series(dtype=float), human_ref)  # fmt: skip
    return Selection(tracked, ready, todo)


def _choose_trains(trains: pd.DataFrame, current: dict[str, str], train_runs, task, language, experiment,
                   messages: list[str]) -> tuple[dict[str, str], str | None]:  # fmt: skip
    """(candidate -> train setting run, the human baseline's run or None)."""
    human = trains[trains["train_data"] == HUMAN]
    if train_runs:
        picked = trains[trains["run_id"].isin(list(train_runs))]
        lost = sorted(set(train_runs) - set(picked["run_id"]))
        if lost:
            raise RoseError(f"train run(s) {', '.join(lost)} are not finished train setting runs of "
                            f"{task}/{language} in experiment {experiment!r}")  # fmt: skip
        if picked["setting"].nunique() > 1:
            parts = [f"{r.train_data}: {r.classifier} ({r.protocol}, setting {r.setting})" for r in picked.itertuples()]
            raise RoseError("refusing to mix cells of classifiers trained with different settings: "
                            + "; ".join(parts) + ": train every candidate with the same settings")  # fmt: skip
        chosen = {r.train_data: r.run_id for r in picked.itertuples() if r.train_data in current}
        base = picked[picked["train_data"] == HUMAN]
        return chosen, (base["run_id"].iloc[-1] if len(base) else None)
    on_current = trains[[current.get(d) is not None and current.get(d) == r for d, r in
                         zip(trains["train_data"], trains["data_run_id"], strict=True)]]  # fmt: skip
    for cand, run_id in current.items():
        older = trains[(trains["train_data"] == cand) & (trains["data_run_id"] != run_id)]
        if len(older) and cand not in set(on_current["train_data"]):
            messages.append(f"stale training: {cand}'s classifiers were trained on an older dataset (run "
                            f"{older['data_run_id'].iloc[-1]}), not on its current one ({run_id}): run `rose train "
                            f"--experiment {experiment} --task {task} --language {language} --data {run_id}`")  # fmt: skip
    if on_current.empty:
        return {}, None
    ranked = on_current.groupby("setting").agg(n=("train_data", "nunique"), newest=("start_time", "max"))
    setting = ranked.sort_values(["n", "newest"]).index[-1]
    mine = _newest(on_current[on_current["setting"] == setting], ["train_data"])
    chosen = dict(zip(mine["train_data"], mine["run_id"], strict=True))
    example = mine.iloc[-1]
    for r in _newest(on_current[on_current["setting"] != setting], ["train_data", "setting"]).itertuples():
        hint = "" if r.train_data in chosen else (
            f": train it like the others (`rose train --experiment {experiment} --task {task} --language "
            f"{language} --data {current[r.train_data]} --classifier {example['classifier']} --protocol "
            f"{example['protocol']}` with the same settings)")  # fmt: skip
        messages.append(f"not mixed: {r.train_data}'s classifier {r.classifier} ({r.protocol}, setting {r.setting}, "
                        f"run {r.run_id}) was trained with other settings than the case's ({example['classifier']}, "
                        f"{example['protocol']}, setting {setting}); its cells are left out{hint}")  # fmt: skip
    base = human[human["setting"] == setting].sort_values("start_time")
    return chosen, (base["run_id"].iloc[-1] if len(base) else None)


def _check_ready(gen: pd.DataFrame, ready: list[str], task: str, language: str, messages: list[str]) -> None:
    missing = [
        f"no train runs for candidate {row.candidate}: run `rose train --task {task} --language {language} "
        f"--data {row.run_id}`" for row in gen.itertuples() if row.candidate not in ready
    ]  # fmt: skip
    if len(gen) < 2:
        raise RoseError(
            f"only one candidate ({gen['candidate'].iloc[0]}) for task {task!r} and language {language!r}: RoSE "
            f"compares two or more; run `rose generate --task {task} --language {language} --generator <model> "
            "--strategy <strategy>` for another generator or strategy" + (f"; also {missing[0]}" if missing else "")
        )
    if len(ready) < 2:
        raise RoseError(
            f"RoSE needs classifiers trained on two or more candidates' data ({task}, {language}): "
            + "; ".join(missing + messages)
        )
    messages.extend(missing)


def _check_counts(trains: pd.DataFrame, chosen: dict[str, str], baseline: str | None, task: str, language: str,
                  messages: list[str]) -> None:  # fmt: skip
    """Say so when the chosen classifiers were trained on different numbers of examples per label."""
    counts = {r.train_data: r.counts for r in trains.itertuples() if r.run_id in {*chosen.values(), baseline}}
    counts = {k: v for k, v in counts.items() if v}
    if len({tuple(sorted(v.items())) for v in counts.values()}) > 1:
        low = {name: min(v.values()) for name, v in counts.items()}
        messages.append(f"{task}/{language}: the classifiers were trained on different numbers of examples per "
                        "label (fewest per label: " + ", ".join(f"{k} {n}" for k, n in sorted(low.items()))
                        + "); `equal_per_label: true` in a study cuts every candidate to the smallest count")  # fmt: skip


def _task_of(runs: list[str], name: str):
    """The task the train runs ``runs`` were made for (rebuilt from a run's ``task.yaml``), else the task ``name``."""
    import mlflow

    from rose.tasks import from_run, get_task

    return from_run(mlflow.MlflowClient().get_run(runs[0])) if len(runs) else get_task(name)


def _human_set(store: Store, runs: list[str], human_test: str, task: str, language: str) -> tuple[str, str]:
    """(dataset key, ref) of the human test set the case is judged on, or ("", ""): ``human_test``, else the one
    most of the classifiers' cells were computed on, else (no human cell yet: a study run by hand) the one most of
    them were evaluated on when trained (``rose train --eval human:<source>``)."""
    task = _task_of(runs, task)
    if human_test:
        return cells_lib.dataset(human_test, task, language).key, human_test
    cells = store.cells
    mine = cells[cells["train_run_id"].isin(runs) & cells["dataset"].fillna("").str.startswith(HUMAN_PREFIX)]
    if mine.empty:
        trains = store.trains[store.trains["run_id"].isin(runs)]
        refs = Counter(ref for evals in trains["human_evals"] for ref in dict.fromkeys(evals))
        if not refs:
            return "", ""
        ref = max(refs, key=lambda r: (refs[r], r))
        return cells_lib.dataset(ref, task, language).key, ref
    ranked = mine.groupby("dataset").agg(n=("train_run_id", "nunique"), newest=("start_time", "max"))
    key = ranked.sort_values(["n", "newest"]).index[-1]
    return key, str(mine.loc[mine["dataset"] == key, "data_ref"].iloc[-1])


def _newest_cells(cells: pd.DataFrame) -> pd.DataFrame:
    """One cell run per (train run, dataset): the newest."""
    if cells.empty:
        return cells
    newest = cells.groupby(["train_run_id", "dataset"])["start_time"].transform("max")
    return cells[cells["start_time"] == newest]


def _name_stale(cells, have, wanted, current, chosen, human_key, messages: list[str]) -> None:
    """Cells of the chosen classifiers computed on a dataset that is no longer the candidate's (or the case's)."""
    stale = []
    for r in cells.drop_duplicates(["train_run_id", "dataset"]).itertuples():
        if (r.train_run_id, r.dataset) in wanted:
            continue
        if r.eval_set in current and r.dataset != current[r.eval_set]:
            stale.append(f"{r.eval_set} dataset run {r.dataset} (current: {current[r.eval_set]}), cell {r.run_id}")
        elif str(r.dataset).startswith(HUMAN_PREFIX) and human_key and r.dataset != human_key:
            stale.append(f"human test set {r.dataset} (current: {human_key}), cell {r.run_id}")
    if stale:
        shown = "; ".join(stale[:SHOWN]) + (f"; and {len(stale) - SHOWN} more" if len(stale) > SHOWN else "")
        messages.append(f"stale cells left out ({len(stale)}): {shown}")


def fill(todo: list[Todo], experiment: str, messages: list[str]) -> int:
    """Compute the missing cells with :func:`rose.train.cells.evaluate_cells` (the pipeline's evaluate units run
    the same function), grouped by classifier so each seed model is loaded once. Returns the cells computed."""
    done = 0
    for train_run_id, items in cells_lib.by_train(todo, lambda item: item.train_run_id).items():
        log.info("computing %d missing cell(s) of train run %s", len(items), train_run_id)
        try:
            cells_lib.evaluate_cells(experiment, train_run_id, [i.data_ref for i in items])
            done += len(items)
        except RoseError as exc:
            messages.append(f"{len(items)} cell(s) missing ({', '.join(i.what for i in items)}): {exc}")
    return done


def missing_message(todo: list[Todo], experiment: str) -> str:
    """What ``--fill-missing false`` says: the missing cells and the commands that compute them."""
    lines = [f"{len(todo)} cell(s) missing; compute them with:"]
    lines += [f"  {cells_lib.command(experiment, i.train_run_id, i.data_ref)}   # {i.what}" for i in todo]
    return "\n".join(lines)
