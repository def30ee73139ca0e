"""The unlabelled pool and the label-free selectors inside ``rose score`` (a real SQLite tracking store, the tiny
encoder as the embedding model, keyword classifiers as the trained seeds)."""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pytest

from rose import tracking
from rose.errors import RoseError
from rose.score import label_free
from rose.score.pool import clean, read_pool
from rose.score.selectors import DIRECTION, TARGET_TEXT
from tests.test_score_mlflow import build_store, config
from tests.tiny import BUNDLED, make_tiny_classifier


def test_pool_excludes_demonstrations_oracle_texts_and_repeats():
    texts = ["A ball game.", "the  doctor said so", "A train left.", "a ball GAME.", "New text", "new text"]
    pool = clean(texts, "f.jsonl", demonstrations=["a ball game."], oracle=["The doctor said so"])
    assert pool.texts == ["A train left.", "New text"]
    assert (pool.read, pool.demonstrations, pool.oracle, pool.duplicates) == (6, 2, 1, 1)
    assert "2 texts of 6 read (2 shown to a candidate as demonstrations, 1 in the human test set" in pool.describe()
    capped = clean([f"text {i}" for i in range(50)], "f", max_n=10, seed=3)
    assert len(capped.texts) == 10 and capped.sampled_out == 40
    assert capped.texts == clean([f"text {i}" for i in range(50)], "f", max_n=10, seed=3).texts
    assert clean(texts, "f").digest == clean(list(texts), "g").digest != clean(texts[:-1], "f").digest


def test_pool_reads_csv_jsonl_and_the_human_train_split(tmp_path):
    (tmp_path / "p.jsonl").write_text("\n".join(json.dumps({"sentence": t}) for t in ["one", "", "two"]))
    assert read_pool(str(tmp_path / "p.jsonl"), "topic", "en", column="sentence") == ["one", "two"]
    (tmp_path / "p.csv").write_text("text,x\nhello,1\nworld,2\n")
    assert read_pool(str(tmp_path / "p.csv"), "topic", "en") == ["hello", "world"]
    with pytest.raises(RoseError, match=r"no column 'text' for the unlabelled texts \(columns: sentence\)"):
        read_pool(str(tmp_path / "p.jsonl"), "topic", "en")
    with pytest.raises(RoseError, match="no such file"):
        read_pool(str(tmp_path / "missing.csv"), "topic", "en")
    import datasets

    datasets.Dataset.from_dict({"text": ["from", "a folder"]}).save_to_disk(str(tmp_path / "ds"))
    assert read_pool(str(tmp_path / "ds"), "topic", "en") == ["from", "a folder"]
    human = read_pool(f"human-train:{BUNDLED}", "topic", "en")
    assert len(human) > 20 and all(isinstance(t, str) and t for t in human)
    assert read_pool("human-train", "topic", "en", human_source=str(BUNDLED)) == human


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    """The score store of test_score_mlflow (a, b with keyword classifiers, c without models), scored twice: with
    an unlabelled pool file (one demonstration among its texts) and without one."""
    from rose.score.run import score

    tmp = tmp_path_factory.mktemp("free")
    encoder = make_tiny_classifier(tmp_path_factory.mktemp("tiny") / "enc")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp)
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp}/mlflow.db")
        mp.delenv("MLFLOW_REGISTRY_URI", raising=False)
        build_store(tmp)
        tracking.setup("rose")
        texts = ["the ball game was long", "a doctor at the clinic", "the train to the coast", "ball and goal",
                 "the nurse and the doctor", "a slow train", "the match ended", "a cold and a cough"]  # fmt: skip
        path = tmp / "pool.jsonl"
        path.write_text("\n".join(json.dumps({"text": t}) for t in texts))
        base = dict(embedding_model=str(encoder), register_champion=False)
        with_pool = score(config(tmp, unlabelled=str(path), output_dir=str(tmp / "r1"), **base))
        without = score(config(tmp, output_dir=str(tmp / "r2"), **base))
        client = mlflow.MlflowClient()
        yield {"with": with_pool, "without": without, "runs": {k: client.get_run(r.run_id) for k, r in
                                                                (("with", with_pool), ("without", without))}}  # fmt: skip


def test_score_with_a_pool_logs_every_selector(scored):
    run, result = scored["runs"]["with"], scored["with"]
    case = result.cases[0]
    free = case.label_free
    assert free.pool is not None and free.pool.demonstrations == 1 and len(free.pool.texts) == 7
    assert run.data.metrics["pool/removed_demonstrations"] == 1 and run.data.metrics["pool/texts"] == 7
    tags = {k[len("rose.selector.") :]: v for k, v in run.data.tags.items() if k.startswith("rose.selector.")}
    assert set(tags) == set(DIRECTION)
    for name in ("mmd_target", "pad_target", "dcscore", "rose_probe", "agreement_target"):
        assert tags[name].startswith("available"), (name, tags[name])
        for cand in ("a__simple", "b__simple", "c__simple") if name != "agreement_target" else ("a__simple",):
            assert f"selector/{name}/{cand}" in run.data.metrics
    # MAUVE needs 50 texts a side; ATC needs the dev split, which these hand-made seed runs do not record
    assert tags["mauve_target"].startswith("not available: ") and "50 or more texts" in tags["mauve_target"]
    assert tags["atc_target"].startswith("not available: ") and "dev split" in tags["atc_target"]
    # a and b's identical keyword classifiers agree on every pool text; c has no model to load
    assert run.data.metrics["selector/agreement_target/a__simple"] == 1.0
    assert "selector/agreement_target/c__simple" not in run.data.metrics
    # every selector is a leaderboard column and a row of the selection table, judged like every metric
    assert set(DIRECTION) <= set(case.leaderboard.columns) and set(DIRECTION) <= set(case.judged["metric"])
    assert case.judged.set_index("metric").loc["rose_probe", "n_candidates"] == 3
    assert "selection/mmd_target/top1" in run.data.metrics
    assert "selector_time/embedding_s" in run.data.metrics
    assert any("rose_probe (logistic-regression probes on frozen embeddings)" in m for m in result.messages)
    page = result.report.read_text()
    assert "Label-free selectors" in page and "unlabelled pool" in page and "atc_target" in page


def test_without_a_pool_the_target_text_selectors_are_not_available(scored):
    run, result = scored["runs"]["without"], scored["without"]
    tags = {k[len("rose.selector.") :]: v for k, v in run.data.tags.items() if k.startswith("rose.selector.")}
    for name in TARGET_TEXT:
        assert tags[name] == "not available: no unlabelled pool (rose score --unlabelled FILE or human-train)"
        assert not any(k.startswith(f"selector/{name}/") for k in run.data.metrics)
    assert tags["dcscore"] == "available" and tags["rose_probe"] == "available"
    assert any(m.startswith("mmd_target not available: no unlabelled pool") for m in result.messages)
    # the pool is identified by content in the score digest
    assert scored["runs"]["with"].data.tags["rose.digest"] != run.data.tags["rose.digest"]


def test_label_free_compute_within_a_group_replays_the_round_robin():
    rng = np.random.default_rng(0)
    centres = np.eye(3, 8) * 4
    labels = ["sports", "health", "travel"]
    data, vectors = {}, {}
    for name in ["a", "b", "c"]:
        x = np.vstack([centres[j] + rng.normal(size=(6, 8)) for j in range(3)])
        ys = [lab for lab in labels for _ in range(6)]
        if name == "c":
            ys = list(rng.permutation(ys))
        texts = [f"{name} {k}" for k in range(18)]
        vectors.update(zip(texts, x, strict=True))
        data[name] = label_free.CandidateData(texts, ys)
    free = label_free.compute(data, labels, embed=lambda t: np.stack([vectors[s] for s in t]), pool=None)
    assert free.values["rose_probe"].idxmin() == "c"
    assert set(free.reasons) == set(TARGET_TEXT)
    pair = free.within(["a", "c"])
    assert pair.loc["a", "rose_probe"] == pytest.approx(free.probe.loc["a", "c"])


@pytest.mark.slow
def test_a_study_with_a_human_train_pool_logs_every_selector_by_pipeline_and_by_hand(tmp_path, monkeypatch):
    """A real study (fake generator, tiny classifier, one seed) with ``score: {unlabelled: human-train}``: its
    score run logs every selector (ATC from the seeds' rebuilt dev splits, agreement from their models); then
    ``rose score --unlabelled human-train`` by hand on the same runs logs them too."""
    from rose.cli import main
    from rose.pipeline.run import run_pipeline
    from rose.tracking import search_runs
    from tests.fakes import tracking_db
    from tests.test_pipeline import study_yaml

    uri = tracking_db(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    monkeypatch.chdir(tmp_path)
    tiny = make_tiny_classifier(tmp_path / "tiny")
    path = study_yaml(tmp_path, tiny, seeds=(1,), epochs=1)
    path.write_text(
        path.read_text().replace('  embedding_model: ""', f"  embedding_model: {tiny}\n  unlabelled: human-train")
    )
    run_pipeline(path)
    (piped,) = search_runs("study", stage="score")

    def check(run) -> None:
        tags = {k[len("rose.selector.") :]: v for k, v in run.data.tags.items() if k.startswith("rose.selector.")}
        assert set(tags) == set(DIRECTION)
        for name in DIRECTION:
            if name == "mauve_target":  # 36 texts per candidate here, under MAUVE's 50
                assert tags[name].startswith("not available") and "50 or more texts" in tags[name]
                continue
            assert tags[name] == "available", (name, tags[name])
            assert {f"selector/{name}/{c}" for c in ("fake-a__zero_shot", "fake-b__target_demos")} <= set(
                run.data.metrics
            )
        assert run.data.metrics["pool/removed_demonstrations"] > 0  # target_demos showed human train texts
        assert run.data.metrics["pool/texts"] >= 2 and "selector_time/atc_target_s" in run.data.metrics

    check(piped)
    assert main(["score", "--experiment", "study", "--task", "topic", "--language", piped.data.tags["rose.language"],
                 "--unlabelled", "human-train", "--embedding-model", str(tiny), "--reference-lm", "",
                 "--tokenizer", "", "--bootstrap", "20", "--register-champion", "false"]) == 0  # fmt: skip
    by_hand = [r for r in search_runs("study", stage="score") if r.info.run_id != piped.info.run_id]
    assert len(by_hand) == 1
    check(by_hand[0])
