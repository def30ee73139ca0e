"""The study run by hand, as the README's "The stages" writes it (no pipeline), on a fresh store:
``rose generate`` twice, ``rose train --data <each generate run> --eval human:<data>``, ``rose score``.

Score finds no cells (train's ``--eval`` metrics are not cells), fills every one it needs, scores and registers
the champion. The quick test uses the fake backend and the tiny encoder; the slow one the offline models.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.fakes import rose, run_id, use_tracking_db
from tests.tiny import TOPIC_EN, make_tiny_classifier

HUMAN = f"human:{TOPIC_EN}"


def check_study(experiment: str, generated: dict[str, str], trained: dict[str, str], printed: str) -> None:
    """One score run, the four cells it filled (each classifier on the other's data and on the human test set),
    the champion it registered: the candidate whose RoSE is higher."""
    import mlflow

    from rose import tracking

    scores = tracking.search_runs(experiment, stage="score")
    assert len(scores) == 1
    score = scores[0]
    cells = tracking.search_runs(experiment, stage="evaluate")
    got = sorted((c.data.tags["rose.train_run_id"], c.data.tags["rose.dataset"].split(":")[0]) for c in cells)
    a, b = generated
    want = sorted([(trained[a], generated[b]), (trained[b], generated[a]), (trained[a], "human"),
                   (trained[b], "human")])  # fmt: skip
    assert got == want
    rose_scores = {k.removeprefix("rose/"): v for k, v in score.data.metrics.items() if k.startswith("rose/")}
    assert set(rose_scores) == set(generated)
    best = max(rose_scores, key=rose_scores.get)
    assert score.data.tags["rose.champion"] == best
    version = mlflow.MlflowClient().get_model_version_by_alias("rose-topic-en", "champion")
    assert version.tags["rose.candidate"] == best and version.tags["rose.score_run_id"] == score.info.run_id
    assert f"champion topic/en: {best}" in printed
    for candidate in generated:
        assert candidate in printed  # the leaderboard


def test_the_stages_by_hand_on_a_fresh_store(tmp_path, monkeypatch, capsys):
    """README "The stages", quick: fake generators, the tiny encoder, no intrinsic models."""
    use_tracking_db(tmp_path, monkeypatch)
    tiny = make_tiny_classifier(tmp_path / "tiny")
    generated = {}
    for generator, strategy in (("fake-a", "target_demos"), ("fake-b", "zero_shot")):
        printed = rose(capsys, "generate", "--task", "topic", "--language", "en", "--generator", generator,
                       "--backend", "fake", "--strategy", strategy, "--per-label", 3, "--source", TOPIC_EN,
                       "--cache-dir", tmp_path / "cache")  # fmt: skip
        generated[f"{generator}__{strategy}"] = run_id(printed)
    trained = {}
    for candidate, data in generated.items():
        printed = rose(capsys, "train", "--task", "topic", "--language", "en", "--data", data, "--classifier", tiny,
                       "--seeds", 1, "--max-epochs", 1, "--eval", HUMAN)  # fmt: skip
        trained[candidate] = re.search(r"parent run ([0-9a-f]{32})", printed).group(1)
    printed = rose(capsys, "score", "--task", "topic", "--language", "en", "--reference-lm", "", "--embedding-model",
                   "", "--tokenizer", "", "--bootstrap", 50)  # fmt: skip
    check_study("rose", generated, trained, printed)


@pytest.mark.slow
def test_the_stages_by_hand_with_the_offline_models(tmp_path, monkeypatch, capsys, rose_asset):
    """README "The stages" word for word (per label 3, one seed, one epoch): smollm2 with target-language
    demonstrations and zero-shot, multilingual-e5-small, score with its default reference LM and tools."""
    use_tracking_db(tmp_path, monkeypatch)
    for name in ("smollm2-135m-instruct", "gemma-3-270m", "multilingual-e5-small"):
        rose_asset(name)
    generated = {}
    for strategy in ("target_demos", "zero_shot"):
        printed = rose(capsys, "generate", "--task", "topic", "--language", "en", "--generator",
                       "smollm2-135m-instruct", "--strategy", strategy, "--per-label", 3, "--source", TOPIC_EN,
                       "--cache-dir", tmp_path / "cache")  # fmt: skip
        generated[f"smollm2-135m-instruct__{strategy}"] = run_id(printed)
    trained = {}
    for candidate, data in generated.items():
        printed = rose(capsys, "train", "--task", "topic", "--language", "en", "--data", data, "--classifier",
                       "multilingual-e5-small", "--seeds", 1, "--max-epochs", 1, "--eval", HUMAN)  # fmt: skip
        trained[candidate] = re.search(r"parent run ([0-9a-f]{32})", printed).group(1)
    printed = rose(capsys, "score", "--task", "topic", "--language", "en")
    check_study("rose", generated, trained, printed)
    import mlflow

    from rose import tracking

    for run in tracking.search_runs("rose", stage="generate"):  # the default tools measured every candidate
        assert "intrinsic/perplexity" in mlflow.MlflowClient().get_run(run.info.run_id).data.metrics
    assert Path(tmp_path / "mlflow.db").exists()
