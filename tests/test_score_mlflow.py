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


def add_seed(client, exp_id, candidate, seed, metrics, task=TASK, language=LANG, data_run_id=None, model=False):
    tags = tracking.tags("train", task, language, role="seed", seed=seed, train_data=candidate, candidate=candidate,
                         data_run_id=data_run_id, classifier="tiny")  # fmt: skip
    run = client.create_run(exp_id, tags=tags, run_name=f"{candidate}-seed{seed}")
    now = int(time.time() * 1000)
    client.log_batch(run.info.run_id, [mlflow.entities.Metric(k, v, now, 0) for k, v in metrics.items()])
    if model:
        with mlflow.start_run(run_id=run.info.run_id):
            mlflow.pyfunc.log_model(name="model", python_model=KeywordClassifier(), pip_requirements=["mlflow"])
    client.set_terminated(run.info.run_id)
    return run.info.run_id


def build_store(tmp) -> dict:
    """Three candidates a, b, c (c added last: nobody was evaluated on it), two seeds each, human test F1."""
    exp_id = tracking.setup("rose")
    client = mlflow.MlflowClient()
    gen = {c: add_generate(client, exp_id, tmp, c) for c in ("a__simple", "b__simple", "c__simple")}
    human = {"a__simple": 0.70, "b__simple": 0.80, "c__simple": 0.60}
    cross = {("a__simple", "b__simple"): 0.6, ("b__simple", "a__simple"): 0.8}
    seeds = {}
    for cand in gen:
        for seed in (1, 2):
            m = {"dev/macro_f1": 0.9 + 0.01 * seed, "eval/human/macro_f1": human[cand] + 0.01 * (seed - 1.5)}
            for (i, j), v in cross.items():
                if i == cand:
                    m[f"eval/{j}/macro_f1"] = v + 0.02 * (seed - 1.5)
            if cand == "c__simple":
                m |= {"eval/a__simple/macro_f1": 0.5, "eval/b__simple/macro_f1": 0.55}
            m[f"eval/{cand}/macro_f1"] = 0.99  # its own data: never part of RoSE
            with_model = (cand, seed) in {("a__simple", 1), ("b__simple", 2)}
            seeds[cand, seed] = add_seed(client, exp_id, cand, seed, m, data_run_id=gen[cand], model=with_model)
    add_seed(client, exp_id, "human", 1, {"eval/human/macro_f1": 0.95})  # trained on human data: not a candidate
    return {"generate": gen, "seeds": seeds}


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
    # a's seed-1 model was evaluated on c's data: it mislabels nothing there (macro-F1 1.0), logged on the run
    filled = mlflow.MlflowClient().get_run(ids["seeds"]["a__simple", 1]).data.metrics
    assert filled["eval/c__simple/macro_f1"] == pytest.approx(1.0)
    # a: seed 1 (b .59, c 1.0) and seed 2 (b .61); b: .79/.81 on a, its models cannot be evaluated on c but one
    assert case.rose.set_index("candidate").loc["a__simple", "rose"] == pytest.approx(((0.59 + 1.0) / 2 + 0.61) / 2)
    assert case.champion == "b__simple" and result.champions[TASK, LANG]["run_id"] == ids["seeds"]["b__simple", 2]
    assert any("b__simple (seed 1)" in m for m in result.messages)  # the cell that could not be filled
    # b's seed-2 model filled b -> c: 'a ball of wool' is health in b's data only, so c's six are all right
    assert case.matrix.loc["b__simple", "c__simple"] == pytest.approx(1.0)
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
    assert len(mlflow.MlflowClient().get_metric_history(ids["generate"]["a__simple"], "intrinsic/distinct_1")) == 1


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
    add_seed(client, exp_id, "a__simple", 1, {"eval/b__simple/macro_f1": 0.5})
    with pytest.raises(RoseError) as err:
        score(config(store))
    assert f"no train runs for candidate b__simple: run `rose train --task topic --language cy --data {b}`" in str(
        err.value)  # fmt: skip
    assert a not in str(err.value)


@pytest.mark.slow
def test_collect_makes_one_search_per_stage_on_300_runs(store, monkeypatch):
    import rose.tracking
    from rose.score.collect import collect
    from rose.score.tables import build_case

    exp_id = tracking.setup("rose")
    client = mlflow.MlflowClient()
    now = int(time.time() * 1000)
    cands = [f"g{i}__simple" for i in range(10)]
    for lang in ("cy", "th", "sw", "de", "he", "id"):
        for cand in cands:  # 60 generate runs (no artifacts needed to collect) and 240 seed runs
            r = client.create_run(exp_id, tags=tracking.tags("generate", TASK, lang, candidate=cand))
            client.set_terminated(r.info.run_id)
            for seed in range(4):
                tags = tracking.tags("train", TASK, lang, role="seed", seed=seed, train_data=cand)
                r = client.create_run(exp_id, tags=tags)
                metrics = {f"eval/{o}/macro_f1": (hash((cand, o, seed)) % 100) / 100 for o in cands if o != cand}
                client.log_batch(r.info.run_id, [mlflow.entities.Metric(k, v, now, 0) for k, v in metrics.items()])
                client.set_terminated(r.info.run_id)
    calls = []
    real = rose.tracking.search_runs
    monkeypatch.setattr(rose.tracking, "search_runs", lambda *a, **k: calls.append(k) or real(*a, **k))
    start = time.perf_counter()
    tracked = collect("rose", [TASK], ["all"])
    case = tracked.case(TASK, "cy")
    tables = build_case(case, TASK, "cy", cands, bootstrap=200)
    elapsed = time.perf_counter() - start
    assert len(calls) == 2 and [c["stage"] for c in calls] == ["generate", "train"]
    assert len(tracked.seeds) == 240 and len(tracked.evals) == 240 * 9
    assert tables.matrix.notna().sum().sum() == 90 and elapsed < 10
