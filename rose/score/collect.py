"""Read the generate and train runs of a study from MLflow into tables: one search query per stage.

The tables are what the pure functions of :mod:`rose.score.roundrobin`, :mod:`rose.score.selection` and the
report take. Cells of the cross-evaluation matrix that the train runs lack are filled here by loading the logged
classifiers (:func:`fill_missing`), and intrinsic metrics are logged back on the generate runs.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

import pandas as pd

from rose.errors import RoseError
from rose.naming import slug

log = logging.getLogger(__name__)

EVAL = re.compile(r"^eval/(?P<set>[^/]+)/macro_f1$")
INTRINSIC = "intrinsic/"
HUMAN = "human"
CASE = ["task", "language"]


@dataclass
class Tracked:
    """What the tracking store holds for the query.

    ``generate``: one row per case and candidate (newest finished generate run): task, language, candidate,
    run_id, generator, strategy, start_time and every ``intrinsic/<name>`` metric as column ``<name>``.
    ``seeds``: one row per train seed run on generated data: task, language, candidate, seed, run_id, dev_f1,
    human_f1. ``evals``: the long cross-evaluation table: task, language, train_candidate, eval_candidate, seed,
    run_id, macro_f1.
    """

    generate: pd.DataFrame
    seeds: pd.DataFrame
    evals: pd.DataFrame
    messages: list[str] = field(default_factory=list)

    def case(self, task: str, language: str) -> Tracked:
        def pick(df: pd.DataFrame) -> pd.DataFrame:
            return df[(df["task"] == task) & (df["language"] == language)].reset_index(drop=True)

        return Tracked(pick(self.generate), pick(self.seeds), pick(self.evals), list(self.messages))

    def cases(self) -> list[tuple[str, str]]:
        return sorted(set(zip(self.generate["task"], self.generate["language"], strict=True)))


def _filters(values: list[str]) -> str | None:
    return values[0] if len(values) == 1 and values[0] != "all" else None


def _keep(df: pd.DataFrame, column: str, values: list[str]) -> pd.DataFrame:
    return df if not values or "all" in values else df[df[column].isin(values)]


def _newest(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    if df.empty:
        return df
    return df.sort_values("start_time").drop_duplicates(keys, keep="last").reset_index(drop=True)


def collect(experiment: str, tasks: list[str], languages: list[str], candidates: list[str] = ()) -> Tracked:
    """Query the generate runs, then the train seed runs, of the tasks and languages (two searches in all)."""
    from rose.tracking import search_runs

    where = {"task": _filters(tasks), "language": _filters(languages)}
    gen_rows = []
    for run in search_runs(experiment, stage="generate", **where):
        t, m = run.data.tags, run.data.metrics
        gen_rows.append({
            "task": t.get("rose.task"), "language": t.get("rose.language"), "candidate": t.get("rose.candidate"),
            "run_id": run.info.run_id, "generator": t.get("rose.generator", ""), "strategy": t.get("rose.strategy", ""),
            "start_time": run.info.start_time, "revision_acceptance_logged": m.get("revision_acceptance"),
            **{k[len(INTRINSIC):]: v for k, v in m.items() if k.startswith(INTRINSIC)},
        })  # fmt: skip
    gen_cols = ["task", "language", "candidate", "run_id", "generator", "strategy", "start_time"]
    generate = pd.DataFrame(gen_rows, columns=None if gen_rows else gen_cols)
    generate = generate[generate["candidate"].notna()] if len(generate) else generate
    generate = _newest(_keep(_keep(generate, "task", tasks), "language", languages), CASE + ["candidate"])
    if candidates:
        known = sorted(set(generate["candidate"])) if len(generate) else []
        unknown = [c for c in candidates if c not in known]
        if unknown:
            raise RoseError(
                f"no finished generate run of candidate(s) {', '.join(unknown)} in experiment {experiment!r} for "
                f"{','.join(tasks)}/{','.join(languages)}: known candidates are {', '.join(known) or 'none'}"
            )
        generate = generate[generate["candidate"].isin(candidates)].reset_index(drop=True)

    seed_rows, eval_rows = [], []
    for run in search_runs(experiment, stage="train", role="seed", **where):
        t, m = run.data.tags, run.data.metrics
        data = t.get("rose.train_data") or t.get("rose.candidate")
        if not data or data == HUMAN:
            continue
        base = {
            "task": t.get("rose.task"),
            "language": t.get("rose.language"),
            "seed": _int(t.get("rose.seed")),
            "run_id": run.info.run_id,
            "start_time": run.info.start_time,
        }
        seed_rows.append(
            {
                **base,
                "candidate": data,
                "dev_f1": m.get("dev/macro_f1"),
                "human_f1": m.get(f"eval/{HUMAN}/macro_f1"),
                "data_run_id": t.get("rose.data_run_id"),
            }
        )
        for key, value in m.items():
            match = EVAL.match(key)
            if match and match["set"] != HUMAN:
                eval_rows.append({**base, "train_candidate": data, "eval_set": match["set"], "macro_f1": value})
    seed_cols = ["task", "language", "seed", "run_id", "start_time", "candidate", "dev_f1", "human_f1", "data_run_id"]
    seeds = pd.DataFrame(seed_rows, columns=seed_cols)
    seeds = _newest(_keep(_keep(seeds, "task", tasks), "language", languages), CASE + ["candidate", "seed"])
    kept_runs = set(seeds["run_id"])
    eval_cols = ["task", "language", "seed", "run_id", "start_time", "train_candidate", "eval_set", "macro_f1"]
    evals = pd.DataFrame(eval_rows, columns=eval_cols)
    evals = evals[evals["run_id"].isin(kept_runs)]
    names = {slug(c): c for c in generate["candidate"]} | {c: c for c in generate["candidate"]}
    evals["eval_candidate"] = evals["eval_set"].map(lambda s: names.get(s, s))
    evals = evals.drop(columns=["eval_set", "start_time"]).reset_index(drop=True)
    return Tracked(generate, seeds.drop(columns=["start_time"]), evals)


def _int(value: str | None) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def check_case(tracked: Tracked, task: str, language: str, experiment: str) -> list[str]:
    """Candidates of the case that can be scored; raises RoseError naming what is missing and how to make it.

    A candidate needs a generate run and at least one train seed run; RoSE needs two such candidates.
    Candidates with a generate run but no training are reported in ``tracked.messages`` (and skipped).
    """
    gen = tracked.generate
    trained = set(tracked.seeds["candidate"])
    if gen.empty:
        raise RoseError(
            f"no finished generate runs for task {task!r} and language {language!r} in experiment {experiment!r}: "
            f"run `rose generate --task {task} --language {language} --generator <model> --strategy <strategy>` "
            "for two or more generators or strategies first"
        )
    missing = [
        f"no train runs for candidate {row.candidate}: run `rose train --task {task} --language {language} "
        f"--data {row.run_id}`" for row in gen.itertuples() if row.candidate not in trained
    ]  # fmt: skip
    ready = [c for c in gen["candidate"] if c in trained]
    if len(gen) < 2:
        raise RoseError(
            f"only one candidate ({gen['candidate'].iloc[0]}) for task {task!r} and language {language!r}: RoSE "
            f"compares two or more; run `rose generate --task {task} --language {language} --generator <model> "
            "--strategy <strategy>` for another generator or strategy" + (f"; also {missing[0]}" if missing else "")
        )
    if len(ready) < 2:
        raise RoseError(
            f"RoSE needs classifiers trained on two or more candidates' data ({task}, {language}): "
            + "; ".join(missing)
        )
    tracked.messages.extend(missing)
    return ready


def fill_missing(tracked: Tracked, task: str, language: str, candidates: list[str]) -> pd.DataFrame:
    """Evaluate the logged classifiers on the candidates' datasets they were not tested on.

    Each seed run lacking ``eval/<candidate>/macro_f1`` for another candidate has its model (``runs:/<id>/model``)
    loaded once and evaluated on that candidate's dataset; the macro-F1 is logged back to the seed run, so adding
    a candidate costs one training per seed. Returns the rows added to the long table; cells that cannot be
    filled are reported in ``tracked.messages``.
    """
    import mlflow

    from rose.score.roundrobin import missing_cells

    seeds = tracked.seeds[tracked.seeds["candidate"].isin(candidates)]
    by_cand = seeds.groupby("candidate")["seed"].apply(list).to_dict()
    todo = missing_cells(tracked.evals, by_cand, candidates)
    if not todo:
        return tracked.evals.iloc[0:0]
    gen_ids = dict(zip(tracked.generate["candidate"], tracked.generate["run_id"], strict=True))
    run_of = {(r.candidate, r.seed): r.run_id for r in seeds.itertuples()}
    datasets: dict[str, object] = {}
    client, added = mlflow.MlflowClient(), []
    log.info("filling %d missing cells of the cross-evaluation matrix (%s, %s)", len(todo), task, language)
    for (cand, seed), group in pd.DataFrame(todo, columns=["c", "s", "j"]).groupby(["c", "s"]):
        run_id = run_of[(cand, seed)]
        try:
            model = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
        except Exception as exc:  # no model logged, or a flavour this environment cannot load
            tracked.messages.append(
                f"{len(group)} cell(s) of {cand} (seed {seed}) are missing and its model cannot be loaded "
                f"({str(exc).splitlines()[0][:160]}): train it again with `rose train --task {task} "
                f"--language {language} --data {gen_ids.get(cand, cand)}`"
            )
            continue
        for other in group["j"]:
            data = datasets.get(other) or datasets.setdefault(other, _load(gen_ids[other], task, language))
            score = evaluate_model(model, data.texts, data.labels)
            client.log_metric(run_id, f"eval/{slug(other)}/macro_f1", score)
            added.append(
                {
                    "task": task,
                    "language": language,
                    "seed": seed,
                    "run_id": run_id,
                    "train_candidate": cand,
                    "macro_f1": score,
                    "eval_candidate": other,
                }
            )
    rows = pd.DataFrame(added, columns=tracked.evals.columns)
    tracked.evals = pd.concat([tracked.evals, rows], ignore_index=True) if added else tracked.evals
    return rows


def _load(run_id: str, task: str, language: str):
    from rose.generated_data import load_ref

    return load_ref(run_id, task, language, strict_labels=False)


def evaluate_model(model, texts: list[str], labels: list[str]) -> float:
    """Macro-F1 of a pyfunc classifier on labelled texts (over the labels seen in truth or predictions).

    Uses ``rose.train.evaluate.evaluate_pyfunc`` when the train stage provides it, so both stages agree.
    """
    try:
        from rose.train.evaluate import evaluate_pyfunc  # type: ignore[attr-defined]
    except ImportError:
        evaluate_pyfunc = None
    if evaluate_pyfunc is not None:
        result = evaluate_pyfunc(model, texts, labels)
        return float(result["macro_f1"] if isinstance(result, dict) else result)
    from sklearn.metrics import f1_score

    out = model.predict(pd.DataFrame({"text": list(texts)}))
    predicted = out["label"] if isinstance(out, pd.DataFrame) else out
    return float(f1_score(list(labels), [str(p) for p in predicted], average="macro", zero_division=0))
