"""score against a real (temporary, SQLite) tracking store populated with fake generate and train runs."""

from __future__ import annotations

import json
import time

import mlflow
import pandas as pd
import pytest

from rose import tracking
from rose.errors import RoseError
from rose.score.config import ScoreConfig

TASK, LANG = "topic", "cy"
KEYWORDS = {"ball": "sports", "doctor": "health", "train": "travel"}
LABELS = ["sports", "health", "travel"]


class KeywordClassifier(mlflow.pyfunc.PythonModel):
    """A stand-in for a trained rose classifier: a label by keyword, with the pyfunc output rose uses."""

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        texts = model_input["text"] if isinstance(model_input, pd.DataFrame) else list(model_input)
        labels = [next((lab for word, lab in KEYWORDS.items() if word in t), "travel") for t in texts]
        return pd.DataFrame({"label": labels, **{f"prob_{x}": [float(x == y) for y in labels] for x in LABELS}})


def dataset(candidate: str) -> list[dict]:
    """Six examples; the keyword classifier gets 'b' wrong in every dataset and 'c' fully right."""
    rows = [("the ball game", "sports"), ("<script>alert('x')</script> ball", "sports"), ("a doctor visit", "health"),
            ("the night train", "travel"), ("a ball of wool", "health" if candidate.startswith("b") else "sports"),
            ("doctor who", "health")]  # fmt: skip
    return [{"text": t, "label": lab, "candidate": candidate, "verdict": "accepted"} for t, lab in rows]


def add_generate(client, exp_id, tmp, candidate, generator="google/gemma-3-4b-it", task=TASK, language=LANG):
    tags = tracking.tags("generate", task, language, candidate=candidate, generator=generator, strategy="simple")
    run = client.create_run(exp_id, tags=tags, run_name=candidate)
    folder = tmp / f"ds-{run.info.run_id}" / "dataset"
    folder.mkdir(parents=True)
    (folder / "data.jsonl").write_text("\n".join(json.dumps(r) for r in dataset(candidate)), encoding="utf-8")
    (folder / "demonstrations.json").write_text(json.dumps({"sports": ["the ball game was long"]}))
    client.log_artifacts(run.info.run_id, str(folder), artifact_path="dataset")
    client.log_metric(run.info.run_id, "kept_total", 6)
    client.set_terminated(run.info.run_id)
    return run.info.run_id


def add_training(
    client,
    exp_id,
    candidate,
    human,
    *,
    data_run_id=None,
    setting="S1",
    classifier="tiny",
    models=(),
    task=TASK,
    language=LANG,
    counts=None,
):
    """A train setting run with seed runs 1 and 2 (a keyword classifier logged for the seeds in ``models``)."""
    tags = tracking.tags("train", task, language, role="setting", train_data=candidate, data_run_id=data_run_id,
                         classifier=classifier, protocol="default", setting=setting, digest=f"d-{candidate}-{setting}")  # fmt: skip
    parent = client.create_run(exp_id, tags=tags, run_name=candidate).info.run_id
    now = int(time.time() * 1000)
    counts = counts or {"sports": 2, "health": 2, "travel": 2}
    client.log_batch(parent, [mlflow.entities.Metric(f"data/count/{k}", v, now, 0) for k, v in counts.items()])
    seeds = {}
    for seed in (1, 2):
        seed_tags = {**tracking.tags("train", task, language, role="seed", seed=seed, train_data=candidate,
                                     data_run_id=data_run_id, classifier=classifier, setting=setting),
                     "mlflow.parentRunId": parent}  # fmt: skip
        run = client.create_run(exp_id, tags=seed_tags, run_name=f"{candidate}-seed{seed}").info.run_id
        client.log_metric(run, "dev/macro_f1", 0.9 + 0.01 * seed)
        if seed in models:
            with mlflow.start_run(run_id=run):
                mlflow.pyfunc.log_model(name="model", python_model=KeywordClassifier(), pip_requirements=["mlflow"])
        client.set_terminated(run)
        seeds[seed] = run
    client.set_terminated(parent)
    return parent, seeds


def add_cell(client, exp_id, train_run, train_data, on, dataset, per_seed, setting="S1", task=TASK, language=LANG):
    """A cell (evaluate run) of ``train_run`` on a dataset, with macro-F1 per seed."""
    tags = tracking.tags("evaluate", task, language, train_run_id=train_run, train_data=train_data, eval_set=on,
                         dataset=dataset, setting=setting, digest=f"c-{train_run}-{dataset}")  # fmt: skip
    run = client.create_run(exp_id, tags=tags).info.run_id
    client.log_param(run, "data", dataset if not dataset.startswith("human:") else "human:/nowhere")
    now = int(time.time() * 1000)
    client.log_batch(run, [mlflow.entities.Metric(f"seed/{s}/macro_f1", v, now, 0) for s, v in per_seed.items()])
    client.set_terminated(run)
    return run


HUMAN_KEY = "human:0123456789abcdef"


def build_store(tmp) -> dict:
    """Three candidates a, b, c (c added last: nobody was evaluated on it), two seeds each, human test cells and
    the human-data baseline. a's and b's seed models are logged (their cells on c are computed by score)."""
    exp_id = tracking.setup("rose")
    client = mlflow.MlflowClient()
    old_b = add_generate(client, exp_id, tmp, "b__simple")  # b's first dataset, replaced below
    time.sleep(0.01)
    gen = {c: add_generate(client, exp_id, tmp, c) for c in ("a__simple", "b__simple", "c__simple")}
    human = {"a__simple": 0.70, "b__simple": 0.80, "c__simple": 0.60, "human": 0.90}
    cross = {("a__simple", "b__simple"): 0.6, ("b__simple", "a__simple"): 0.8, ("c__simple", "a__simple"): 0.5,
             ("c__simple", "b__simple"): 0.55}  # fmt: skip
    trains, seeds = {}, {}
    for cand in [*gen, "human"]:
        models = (1, 2) if cand in ("a__simple", "b__simple") else ()
        trains[cand], seed_ids = add_training(client, exp_id, cand, cand == "human", data_run_id=gen.get(cand),
                                              models=models)  # fmt: skip
        seeds.update({(cand, s): r for s, r in seed_ids.items()})
        add_cell(client, exp_id, trains[cand], cand, "human", HUMAN_KEY,
                 {s: human[cand] + 0.01 * (s - 1.5) for s in (1, 2)})  # fmt: skip
    for (i, j), v in cross.items():
        add_cell(client, exp_id, trains[i], i, j, gen[j], {s: v + 0.02 * (s - 1.5) for s in (1, 2)})
    stale = add_cell(client, exp_id, trains["a__simple"], "a__simple", "b__simple", old_b, {1: 0.1, 2: 0.1})
    return {"generate": gen, "seeds": seeds, "trains": trains, "old_b": old_b, "stale": stale}


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    return tmp_path


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One populated store shared by the tests that only add to it."""
    tmp = tmp_path_factory.mktemp("store")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp)
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp}/mlflow.db")
        mp.delenv("MLFLOW_REGISTRY_URI", raising=False)
        ids = build_store(tmp)
        yield tmp, ids, mp


def config(tmp, **kw) -> ScoreConfig:
    base = dict(task=[TASK], language=[LANG], tokenizer="", embedding_model="", reference_lm="", bootstrap=200,
                output_dir=str(tmp / "report"))  # fmt: skip
    return ScoreConfig(**(base | kw))


def test_score_fills_missing_cells_logs_intrinsic_and_registers_champion(built):
    from rose.score.run import score

    store, ids, _ = built
    tracking.setup("rose")
    result = score(config(store))
    case = result.cases[0]
    # a's and b's cells on c were computed by loading their seed models: one evaluate run each, per-seed metrics
    cells = tracking.search_runs("rose", stage="evaluate", train_run_id=ids["trains"]["a__simple"],
                                 dataset=ids["generate"]["c__simple"])  # fmt: skip
    assert len(cells) == 1
    metrics = cells[0].data.metrics
    # the keyword classifier gets all six of c's examples right: F1 1 on 3 labels, 0 on the 4 labels of the task
    # absent from truth and predictions (macro-F1 over the task's 7 labels)
    assert metrics["seed/1/macro_f1"] == pytest.approx(3 / 7) and metrics["seed/2/n"] == 6
    assert cells[0].data.tags["rose.train_digest"] == "d-a__simple-S1"
    arts = {a.path for a in mlflow.MlflowClient().list_artifacts(cells[0].info.run_id, "confusion")}
    assert arts == {"confusion/seed1.csv", "confusion/seed2.csv"}
    a = ((0.59 + 3 / 7) / 2 + (0.61 + 3 / 7) / 2) / 2
    assert case.rose.set_index("candidate").loc["a__simple", "rose"] == pytest.approx(a)
    assert case.matrix.loc["b__simple", "c__simple"] == pytest.approx(3 / 7)  # the same keyword rules
    # the stale cell (a on b's first dataset) is named and left out
    assert any("stale cells left out (1)" in m and ids["old_b"] in m for m in result.messages)
    assert case.matrix.loc["a__simple", "b__simple"] == pytest.approx(0.6)
    # the human-data baseline and each candidate's gap to it
    board = case.leaderboard.set_index("candidate")
    assert board.loc["b__simple", "gap_to_human"] == pytest.approx(0.80 - 0.90)
    assert case.champion == "b__simple" and result.champions[TASK, LANG]["run_id"] == ids["seeds"]["b__simple", 2]
    # intrinsic metrics were logged once on each generate run
    gen = mlflow.MlflowClient().get_run(ids["generate"]["a__simple"]).data.metrics
    assert gen["intrinsic/duplicate_rate"] == 0 and gen["intrinsic/generator_parameters"] == 4.3e9
    assert gen["intrinsic/revision_acceptance"] == 1.0 and "intrinsic/target_language_share" in gen
    # checked against human test data: the oracle is b, RoSE picks it
    judged = case.judged.set_index("metric")
    assert judged.loc["rose", "oracle"] == "b__simple" and judged.loc["rose", "top1"] == 1
    # the score run and its report
    run = mlflow.MlflowClient().get_run(result.run_id)
    assert run.data.tags["rose.stage"] == "score" and run.data.tags["rose.champion"] == "b__simple"
    arts = {a.path for a in mlflow.MlflowClient().list_artifacts(result.run_id, "report")}
    assert {"report/report.html", f"report/matrix_{TASK}_{LANG}.csv", f"report/heatmap_{TASK}_{LANG}.png",
            f"report/scatter_{TASK}_{LANG}.png", "report/report.md"} <= arts  # fmt: skip
    html = result.report.read_text()
    assert "&lt;script&gt;alert" in html and "<script>" not in html
    # the champion alias serves b's best seed
    model = mlflow.pyfunc.load_model(f"models:/rose-{TASK}-{LANG}@champion")
    assert list(model.predict(pd.DataFrame({"text": ["ball"]}))["label"]) == ["sports"]
    # a second score finds every cell and intrinsic metric present: nothing is recomputed, the champion stays
    again = score(config(store))
    assert again.champions[TASK, LANG]["version"] == result.champions[TASK, LANG]["version"]
    assert len(tracking.search_runs("rose", stage="evaluate")) == len(ids["trains"]) + 5 + 2
    assert len(mlflow.MlflowClient().get_metric_history(ids["generate"]["a__simple"], "intrinsic/distinct_1")) == 1


def test_intrinsic_metrics_are_keyed_by_the_tools_that_measured_them(store, monkeypatch):
    """Each group of intrinsic metrics carries what measured it (``rose.intrinsic.<group>``); a score with other
    tools or settings measures that group again, never reusing another tool's values, and leaves the rest."""
    import numpy as np

    from rose.score import run as score_run

    ids = build_store(store)
    a = ids["generate"]["a__simple"]
    client = mlflow.MlflowClient()
    models = {"eye": lambda texts: np.eye(len(texts)), "ones": lambda texts: np.ones((len(texts), 4))}
    monkeypatch.setattr(score_run, "embedder", lambda name: models[name])

    def scored(**kw):
        result = score_run.score(config(store, register_champion=False, **kw))
        return result.cases[0].generate.set_index("candidate").loc["a__simple"], client.get_run(a).data

    row, data = scored(embedding_model="eye")
    assert data.tags["rose.intrinsic.embedding_model"] == "eye sample=1000 seed=0"
    assert data.tags["rose.intrinsic.tokenizer"] == "words sample=1000 seed=0"
    assert data.tags["rose.intrinsic.reference_lm"] == ""
    assert row["embedding_distance"] == pytest.approx(1.0)  # orthogonal stand-in embeddings
    row, data = scored(embedding_model="ones")  # another embedding model: measured again, with it
    assert row["embedding_distance"] == pytest.approx(0.0) and data.metrics["intrinsic/embedding_distance"] == 0
    assert data.tags["rose.intrinsic.embedding_model"] == "ones sample=1000 seed=0"
    assert len(client.get_metric_history(a, "intrinsic/distinct_1")) == 1  # the tokenizer's group was left alone
    row, data = scored(embedding_model="")  # none: the other model's values are not shown, nor kept on the run
    assert pd.isna(row["embedding_distance"]) and np.isnan(data.metrics["intrinsic/embedding_distance"])
    row, data = scored(embedding_model="", intrinsic_sample=3)  # the sample decides self-BLEU's hypotheses
    assert data.tags["rose.intrinsic.tokenizer"] == "words sample=3 seed=0"
    assert len(client.get_metric_history(a, "intrinsic/distinct_1")) == 2
    row, data = scored(embedding_model="ones", intrinsic=False)  # not measuring: other tools' values are left out
    assert pd.isna(row["embedding_distance"]) and "rose.intrinsic.embedding_model" in data.tags


def test_score_refuses_to_mix_classifiers_and_names_what_it_leaves_out(built):
    from rose.score.run import score

    store, ids, _ = built
    exp_id = tracking.setup("rose")
    client = mlflow.MlflowClient()
    gen_d = add_generate(client, exp_id, store, "d__simple")
    d, _ = add_training(client, exp_id, "d__simple", False, data_run_id=gen_d, setting="S2", classifier="other",
                        counts={"sports": 1, "health": 2, "travel": 2})  # fmt: skip
    for other in ("a__simple", "b__simple", "c__simple"):
        add_cell(client, exp_id, d, "d__simple", other, ids["generate"][other], {1: 0.99, 2: 0.99}, setting="S2")
    gen_e = add_generate(client, exp_id, store, "e__simple")  # trained like a, b and c; no cells yet
    add_training(client, exp_id, "e__simple", False, data_run_id=gen_e)
    result = score(config(store, register_champion=False, fill_missing=False, candidates=[
        "a__simple", "b__simple", "c__simple", "d__simple"]))  # fmt: skip
    case = result.cases[0]
    # d was trained with another classifier: its cells never enter the matrix, and the note says so
    assert set(case.matrix.index) == {"a__simple", "b__simple", "c__simple"} and "d__simple" not in case.candidates
    assert set(case.evals["train_candidate"]) == {"a__simple", "b__simple", "c__simple"}
    note = next(m for m in result.messages if m.startswith("not mixed: d__simple's classifier other"))
    assert f"--data {gen_d} --classifier tiny" in note
    # without filling, the missing cells of a new candidate are named with the commands that compute them
    result = score(config(store, register_champion=False, fill_missing=False))
    missing = next(m for m in result.messages if "cell(s) missing" in m)
    assert f"rose evaluate --experiment rose --train-run {ids['trains']['a__simple']} --data {gen_e}" in missing
    assert "7 cell(s) missing" in missing  # a, b, c on e; e on a, b, c and on the human test set
    # asked for both settings at once, score refuses
    with pytest.raises(RoseError, match="refusing to mix cells of classifiers trained with different settings"):
        score(config(store, register_champion=False, train_runs=[ids["trains"]["a__simple"], d]))


def test_champion_replaced_keeps_a_tag(built):
    from rose.score import champion

    _, ids, _ = built
    tracking.setup("rose")
    first = champion.register(ids["seeds"]["a__simple", 1], "m", {"rose.candidate": "a__simple"})
    second = champion.register(ids["seeds"]["b__simple", 2], "m", {"rose.candidate": "b__simple"})
    client = mlflow.MlflowClient()
    assert client.get_model_version_by_alias("m", "champion").version == second.version
    old = client.get_model_version("m", first.version)
    assert old.tags["rose.replaced_by"] == str(second.version) and "rose.replaced_at" in old.tags
    assert champion.register(ids["seeds"]["b__simple", 2], "m").version == second.version  # same run: no change


def test_empty_experiment_says_what_to_run(store):
    from rose.score.run import score

    tracking.setup("rose")
    with pytest.raises(RoseError, match=r"no finished generate runs.*rose generate --task topic --language cy"):
        score(config(store))


def test_partial_experiment_names_the_missing_training(store):
    from rose.score.run import score

    exp_id = tracking.setup("rose")
    client = mlflow.MlflowClient()
    a = add_generate(client, exp_id, store, "a__simple")
    b = add_generate(client, exp_id, store, "b__simple")
    add_training(client, exp_id, "a__simple", False, data_run_id=a)
    with pytest.raises(RoseError) as err:
        score(config(store))
    assert f"no train runs for candidate b__simple: run `rose train --task topic --language cy --data {b}`" in str(
        err.value)  # fmt: skip
    assert a not in str(err.value)


@pytest.mark.slow
def test_collect_makes_one_search_per_stage_on_300_runs(store, monkeypatch):
    import rose.tracking
    from rose.score.collect import collect, select
    from rose.score.tables import build_case

    exp_id = tracking.setup("rose")
    client = mlflow.MlflowClient()
    now = int(time.time() * 1000)
    cands = [f"g{i}__simple" for i in range(10)]
    for lang in ("cy", "th", "sw", "de", "he", "id"):
        gens, trains = {}, {}
        for cand in cands:  # 60 generate runs (no artifacts needed to collect), 60 settings, 60 x 9 cells
            r = client.create_run(exp_id, tags=tracking.tags("generate", TASK, lang, candidate=cand))
            client.set_terminated(r.info.run_id)
            gens[cand] = r.info.run_id
            tags = tracking.tags("train", TASK, lang, role="setting", train_data=cand, data_run_id=gens[cand],
                                 setting="S", classifier="tiny")  # fmt: skip
            r = client.create_run(exp_id, tags=tags)
            client.set_terminated(r.info.run_id)
            trains[cand] = r.info.run_id
        for cand in cands:
            for other in cands:
                if other == cand:
                    continue
                tags = tracking.tags("evaluate", TASK, lang, train_run_id=trains[cand], train_data=cand,
                                     eval_set=other, dataset=gens[other], setting="S")  # fmt: skip
                r = client.create_run(exp_id, tags=tags)
                metrics = [mlflow.entities.Metric(f"seed/{s}/macro_f1", (hash((cand, other, s)) % 100) / 100, now, 0)
                           for s in range(4)]  # fmt: skip
                client.log_batch(r.info.run_id, metrics)
                client.set_terminated(r.info.run_id)
    calls = []
    real = rose.tracking.search_runs
    monkeypatch.setattr(rose.tracking, "search_runs", lambda *a, **k: calls.append(k) or real(*a, **k))
    start = time.perf_counter()
    stored = collect("rose", [TASK], ["all"])
    chosen = select(stored.case(TASK, "cy"), TASK, "cy", "rose")
    tables = build_case(chosen.tracked, TASK, "cy", cands, bootstrap=200)
    elapsed = time.perf_counter() - start
    assert len(calls) == 3 and [c["stage"] for c in calls] == ["generate", "train", "evaluate"]
    assert len(stored.cells) == 6 * 90 * 4 and not chosen.todo
    assert tables.matrix.notna().sum().sum() == 90 and elapsed < 10
