"""rose train: data module, metrics, dev split, a smoke run with cross-evaluation, the pyfunc model, bad input."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rose.errors import RoseError
from rose.human_data import LabelledData
from rose.naming import metric_key
from rose.train import pyfunc
from tests.tiny import TOPIC_EN, human_rows, make_tiny_classifier, write_dataset

HUMAN = f"human:{TOPIC_EN}"  # the shared data, else rose's bundled English topic sentences


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return make_tiny_classifier(tmp_path_factory.mktemp("tiny") / "encoder")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A project folder with its own MLflow SQLite store (module-wide)."""
    folder = tmp_path_factory.mktemp("project")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{folder / 'mlflow.db'}")
        mp.setenv("ROSE_HOME", str(folder / "home"))
        yield folder


def config(data: str, classifier, **kw):
    from rose.train.config import TrainConfig

    values = dict(task="topic", language="en", data=data, classifier=str(classifier), seeds=[1], per_label=4,
                  max_epochs=2, learning_rate=1e-3, batch_size=8, num_threads=1)  # fmt: skip
    values.update(kw)
    return TrainConfig(**values)


# ---- pure pieces -----------------------------------------------------------------------------------------------


def test_macro_f1_is_over_the_task_labels_as_sklearn_with_labels():
    import torch
    from sklearn.metrics import accuracy_score, f1_score

    from rose.metrics import classification_metrics
    from rose.naming import metric_key
    from rose.tasks import get_task
    from rose.train.module import EpochPredictions

    names = list(get_task("topic").labels)  # 7 labels; the case below never has the last three
    y_true = [0, 0, 1, 1, 1, 2, 2, 0, 1, 2, 3]
    y_pred = [0, 1, 1, 1, 0, 2, 0, 0, 2, 2, 1]  # label 3 is in the truth only
    got = classification_metrics(y_true, y_pred, names)
    expected = f1_score(y_true, y_pred, labels=list(range(len(names))), average="macro", zero_division=0)
    assert got["macro_f1"] == pytest.approx(expected)
    # a label absent from truth and predictions counts 0: the sum over the labels present, divided by all 7
    present = f1_score(y_true, y_pred, labels=[0, 1, 2, 3], average=None, zero_division=0)
    assert got["macro_f1"] == pytest.approx(present.sum() / 7)
    assert got["macro_f1"] < f1_score(y_true, y_pred, average="macro")
    assert got["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred)) and got["n"] == len(y_true)
    per_label = f1_score(y_true, y_pred, labels=range(len(names)), average=None, zero_division=0)
    assert [got[metric_key("f1", label=n)] for n in names] == pytest.approx(list(per_label))
    # training's per-epoch metrics are the same function
    epoch = EpochPredictions(names)
    epoch.update(torch.tensor(y_pred[:5]), torch.tensor(y_true[:5]))
    epoch.update(torch.tensor(y_pred[5:]), torch.tensor(y_true[5:]))
    assert epoch.compute() == got


def test_dev_split_is_stratified_and_seeded():
    from rose.train.fit import split_index

    labels = ["a"] * 40 + ["b"] * 20 + ["c"] * 10
    data = LabelledData([f"t{i}" for i in range(len(labels))], labels)
    train, dev = split_index(data, 0.1, seed=1)
    assert sorted(train + dev) == list(range(len(labels))) and not set(train) & set(dev)
    assert sorted(labels[i] for i in dev) == ["a"] * 4 + ["b"] * 2 + ["c"]
    assert split_index(data, 0.1, seed=1) == (train, dev)
    assert split_index(data, 0.1, seed=2)[1] != dev


def test_batches_pad_per_batch_and_group_by_length():
    from rose.train.datamodule import ClassificationDataModule, Collate, Encoded, LengthGroupedBatchSampler

    batch = Collate(pad_id=1)([([0, 5, 2], 0), ([0, 5, 6, 7, 2], 1)])
    assert batch["input_ids"].shape == (2, 5) and batch["input_ids"][0, 3:].tolist() == [1, 1]
    assert batch["attention_mask"].sum().item() == 8
    assert Collate(pad_id=1, pad_to=16)([([0, 2], 0)])["input_ids"].shape == (1, 16)
    lengths = [3, 30, 4, 29, 5, 31, 3, 28]
    batches = list(LengthGroupedBatchSampler(lengths, batch_size=2, seed=0))
    assert sorted(i for b in batches for i in b) == list(range(8))
    assert all(abs(lengths[b[0]] - lengths[b[-1]]) <= 2 for b in batches)  # similar lengths together
    data = Encoded([[0] * n for n in lengths], [0] * 8)
    ref = ClassificationDataModule(data, data, pad_id=1, batch_size=4, pad_to_max_length=True, max_length=40)
    assert next(iter(ref.train_dataloader()))["input_ids"].shape == (4, 40)


# ---- bad input ---------------------------------------------------------------------------------------------------


def test_bad_inputs_are_clear_errors(tiny, tmp_path):
    from rose.train.fit import prepare

    rows = human_rows(per_label=2)
    cases = {
        "is not a label of task": write_dataset(tmp_path / "alien.jsonl", rows + [("Set an alarm", "alarm_set")]),
        "single label": write_dataset(tmp_path / "one.jsonl", [(t, "sports") for t, _ in rows]),
        "empty": write_dataset(tmp_path / "empty.jsonl", []),
    }
    for message, path in cases.items():
        with pytest.raises(RoseError, match=message):
            prepare(config(str(path), tiny))
    with pytest.raises(RoseError, match="does not exist"):
        prepare(config(HUMAN, tmp_path / "no-such-model"))
    with pytest.raises(RoseError, match="no dataset"):
        prepare(config(str(tmp_path / "missing.jsonl"), tiny))


def test_cli_maps_flags_to_config():
    from rose.cli import build_parser
    from rose.config import from_args
    from rose.train.config import TrainConfig

    args = build_parser().parse_args(
        [
            "train",
            "--task",
            "topic",
            "--language",
            "en",
            "--data",
            HUMAN,
            "--seeds",
            "1-3",
            "--eval",
            f"{HUMAN},x.jsonl",
            "--freeze-embeddings",
        ]
    )
    cfg = from_args(TrainConfig, args)
    assert cfg.seeds == [1, 2, 3] and cfg.eval == [HUMAN, "x.jsonl"] and cfg.freeze_embeddings
    assert (cfg.learning_rate, cfg.batch_size, cfg.max_epochs, cfg.patience, cfg.per_label) == (1e-5, 16, 50, 5, 100)


# ---- training ----------------------------------------------------------------------------------------------------


def test_same_seed_same_model(tiny):
    from rose.train.fit import fit_seed, prepare

    setting = prepare(config(HUMAN, tiny, per_label=3))
    first, second = fit_seed(setting, 7), fit_seed(setting, 7)
    assert first.history == second.history and first.dev_metrics == second.dev_metrics
    for (name, a), b in zip(first.model.state_dict().items(), second.model.state_dict().values(), strict=True):
        assert np.array_equal(a.numpy(), b.numpy()), name
    assert fit_seed(setting, 8).history != first.history


def test_train_top_layers_trains_only_the_top_layers_and_the_head(tiny):
    from rose.train.fit import fit_seed, prepare

    setting = prepare(config(HUMAN, tiny, per_label=3, train_top_layers=1, learning_rate=1e-2))
    before = {k: v.clone() for k, v in setting.reference.items()}
    after = fit_seed(setting, 1).model.state_dict()
    changed = {k for k, v in after.items() if k in before and not np.array_equal(v.numpy(), before[k].numpy())}
    assert changed and all(k.startswith(("roberta.encoder.layer.1.", "classifier.")) for k in changed), changed
    assert any(k.startswith("roberta.encoder.layer.1.") for k in changed)
    with pytest.raises(RoseError, match="encoder has 2 layers"):
        fit_seed(setting, 1, config=config(HUMAN, tiny, per_label=3, train_top_layers=3))


def test_best_epoch_ties_on_dev_f1_go_to_the_lower_dev_loss():
    """A small dev split's macro-F1 saturates at 1.0 from the first epoch: the restored epoch is then the one of
    the lowest dev loss among the tied ones, not the first (least trained) one; without a tie-break the first."""
    from types import SimpleNamespace

    import torch

    from rose.train.module import BestWeights

    epochs = [(1.0, 1.07), (1.0, 0.47), (1.0, 0.19), (1.0, 0.25), (0.9, 0.01)]
    module = torch.nn.Linear(1, 1)
    for tie_break, expected in (("val/loss", 2), ("", 0)):
        best = BestWeights("val/macro_f1", "max", tie_break)
        for epoch, (f1, loss) in enumerate(epochs):
            metrics = {"val/macro_f1": torch.tensor(f1), "val/loss": torch.tensor(loss)}
            best.on_train_epoch_end(SimpleNamespace(callback_metrics=metrics, current_epoch=epoch), module)
        assert best.best_epoch == expected and best.best == 1.0


def test_protocols_stop_on_what_they_say(tiny):
    import dataclasses

    from rose.train.fit import fit_seed, prepare

    setting = prepare(config(HUMAN, tiny, per_label=3, max_epochs=6, patience=1, learning_rate=0.0))
    # with a learning rate of 0 nothing improves: patience 1 stops after epoch 2 on either monitor
    default = fit_seed(setting, 1)
    assert default.epochs == 2 and default.best_epoch == 0
    reference = fit_seed(setting, 1, config=dataclasses.replace(setting.config, protocol="reference"))
    assert reference.epochs <= 3 and "train/loss" in reference.history[0]


def test_reference_protocol_is_a_plain_pytorch_loop(tiny, monkeypatch):
    """``--protocol reference`` takes the same steps as the reference code's loop: the same model init, the same
    normalised texts padded to 128 in the same shuffled batches, torch's AdamW at a constant learning rate, no
    clipping; per-step losses agree."""
    import string

    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from rose.train.fit import fit_seed, prepare, split_index
    from rose.train.module import ClassifierModule

    steps: list[float] = []
    original = ClassifierModule.training_step

    def recording(self, batch, batch_idx):  # the real step, observed
        loss = original(self, batch, batch_idx)
        steps.append(float(loss.detach()))
        return loss

    monkeypatch.setattr(ClassifierModule, "training_step", recording)
    seed, lr, batch_size, epochs = 3, 3e-3, 8, 2
    setting = prepare(config(HUMAN, tiny, per_label=4, protocol="reference", learning_rate=lr, batch_size=batch_size,
                             max_epochs=epochs, patience=50, dropout=0.0, bf16="false"))  # fmt: skip
    fit_seed(setting, seed)

    # the plain loop, written as the reference code writes it
    train_idx, _ = split_index(setting.train_data, setting.config.dev_fraction, seed)
    texts = [setting.train_data.texts[i] for i in train_idx]
    assert any(t != "".join(c for c in t.lower() if c not in string.punctuation) for t in texts)  # it matters
    texts = ["".join(c for c in t.lower() if c not in string.punctuation) for t in texts]
    labels = torch.tensor([setting.label_names.index(setting.train_data.labels[i]) for i in train_idx])
    tokenizer = AutoTokenizer.from_pretrained(tiny)
    enc = tokenizer(texts, padding="max_length", max_length=128, truncation=True, return_tensors="pt")
    dataset = [{"input_ids": enc["input_ids"][i], "attention_mask": enc["attention_mask"][i], "labels": labels[i]}
               for i in range(len(texts))]  # fmt: skip
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_pretrained(
        tiny, num_labels=len(setting.label_names), hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True,
                                         generator=torch.Generator().manual_seed(seed))  # fmt: skip
    model.train()
    plain = []
    for _ in range(epochs):
        for batch in loader:
            optimizer.zero_grad()
            loss = model(**batch).loss
            loss.backward()
            optimizer.step()
            plain.append(loss.item())
    assert len(steps) == len(plain) >= 6  # the default optimizer (decay, linear schedule) is off by 3e-3 here
    np.testing.assert_allclose(steps, plain, rtol=1e-5, atol=1e-6)


def test_reference_protocol_reads_normalised_texts_when_predicting(tiny):
    from rose.train.evaluate import predict_proba
    from rose.train.fit import fit_seed, prepare
    from rose.train.normalize import normalize_text, reads_normalized

    assert normalize_text("Hello, World! «Ça va?» it's 3.5%") == "hello world «ça va» its 35"
    setting = prepare(config(HUMAN, tiny, per_label=3, max_epochs=1, protocol="reference", bf16="false"))
    model = fit_seed(setting, 1).model
    assert reads_normalized(model)
    raw = ["The TEAM won, again!", "Doctors: the vaccine works."]
    got = predict_proba(model, setting.tokenizer, raw)
    model.config.rose_normalized_text = False  # the same model told to read the texts as they are
    expected = predict_proba(model, setting.tokenizer, [normalize_text(t) for t in raw])
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert not np.allclose(got, predict_proba(model, setting.tokenizer, raw))


@pytest.fixture(scope="module")
def trained(tiny, workdir):
    """One small training call: 2 seeds, cross-evaluated on the human test set and a synthetic file."""
    from rose.train.run import train

    base = workdir / "base-copy"  # a base the tests may delete later
    shutil.copytree(tiny, base)
    synthetic = write_dataset(workdir / "syn.jsonl", human_rows(split="dev", per_label=3), candidate="gen-a__zs")
    cfg = config(HUMAN, base, seeds=[1, 2], eval=[HUMAN, str(synthetic)], register="tiny-topic")
    return train(cfg), base


def test_smoke_run_logs_the_schema(trained):
    import mlflow

    result, _ = trained
    assert len(result.seeds) == 2
    for seed in result.seeds:
        for key in (
            "dev/macro_f1",
            "eval/human/macro_f1",
            "eval/human/accuracy",
            "eval/gen-a__zs/macro_f1",
            metric_key("eval", "human", "f1", label="science/technology"),
            "time/train_s",
            "memory/peak_rss_mb",
            "model/artifact_mb",
        ):
            assert key in seed.metrics, key
        assert seed.epochs == 2
    assert {"eval/human/macro_f1_mean", "eval/human/macro_f1_std", "dev/accuracy_mean"} <= set(result.summary)
    client = mlflow.MlflowClient()
    parent = client.get_run(result.parent_run_id)
    assert parent.data.tags["rose.role"] == "setting" and parent.data.tags["rose.train_data"] == "human"
    run = client.get_run(result.seeds[0].run_id)
    assert run.data.tags["rose.role"] == "seed" and run.data.tags["rose.seed"] == "1"
    assert run.data.tags["mlflow.parentRunId"] == result.parent_run_id
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val/macro_f1")] == [0, 1]
    files = {a.path for a in client.list_artifacts(run.info.run_id, "confusion")}
    assert files == {"confusion/human.png", "confusion/human.csv", "confusion/gen-a__zs.png", "confusion/gen-a__zs.csv"}
    assert run.inputs.dataset_inputs[0].dataset.name == "human"


def test_synthetic_training_data_is_named_in_tags(tiny, workdir):
    import mlflow

    from rose.train.run import train

    path = write_dataset(workdir / "gen.jsonl", human_rows(per_label=3), candidate="gen-b__fs")
    result = train(config(str(path), tiny, eval=[HUMAN], log_models=False, max_epochs=1))
    tags = mlflow.MlflowClient().get_run(result.seeds[0].run_id).data.tags
    assert tags["rose.train_data"] == tags["rose.candidate"] == "gen-b__fs"
    assert "eval/human/macro_f1" in result.seeds[0].metrics


def test_pyfunc_round_trip_matches_logged_metrics(trained):
    import mlflow
    import pandas as pd

    from rose.generated_data import load_ref
    from rose.train.evaluate import evaluate_pyfunc

    result, _ = trained
    seed = result.seeds[0]
    model = mlflow.pyfunc.load_model(pyfunc.model_uri(seed.run_id))
    out = model.predict(["The team won the final.", "A new vaccine was approved."])
    assert list(out.columns[:2]) == ["label", "prob_science/technology"] and len(out) == 2
    assert np.allclose(out.filter(like="prob_").sum(axis=1), 1.0, atol=1e-5)
    assert model.predict(pd.DataFrame({"text": ["Rain in Wales"]}))["label"][0] in out.columns[1:].str[5:]
    human = load_ref(HUMAN, "topic", "en", split="test")
    scores = evaluate_pyfunc(model, human.texts, human.labels)
    assert scores["macro_f1"] == pytest.approx(seed.metrics["eval/human/macro_f1"], abs=1e-6)
    assert seed.metrics["model/artifact_mb"] < 0.4  # the delta only: no copy of the embedding table


def test_changed_base_is_refused_and_registered_model_is_self_contained(trained, tmp_path):
    import mlflow
    from safetensors.torch import load_file, save_file

    from rose.train.delta import BaseModelError, load_classifier
    from rose.train.pyfunc import ARTIFACT, export_self_contained

    result, base = trained
    exported = export_self_contained(result.seeds[1].run_id)  # what the score stage registers as champion
    assert exported == export_self_contained(result.seeds[1].run_id)
    local = Path(mlflow.artifacts.download_artifacts(pyfunc.model_uri(result.seeds[0].run_id), dst_path=tmp_path))
    folder = next(local.rglob("meta.json")).parent
    assert folder.name == ARTIFACT and json.loads((folder / "meta.json").read_text())["layout"] == "delta"
    weights = load_file(str(base / "model.safetensors"))
    weights = {k: v + 0.01 if v.is_floating_point() else v for k, v in weights.items()}
    save_file(weights, str(base / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(BaseModelError, match="digest"):
        load_classifier(folder)
    shutil.rmtree(base)
    with pytest.raises(BaseModelError, match="not available"):
        load_classifier(folder)
    assert result.registered == "models:/tiny-topic/1"
    registered = mlflow.pyfunc.load_model(result.registered)  # never needs the (now deleted) base
    assert len(registered.predict(["Football is popular in Europe."])) == 1
    version = mlflow.register_model(exported, "tiny-champion")
    assert len(mlflow.pyfunc.load_model(f"models:/tiny-champion/{version.version}").predict(["Rain"])) == 1


def test_dev_and_eval_sets_are_scored_in_fp32_as_cells_are(tiny, workdir, monkeypatch):
    """Trained in bf16, a seed's dev split and evaluation sets are scored on the CPU in fp32, the precision its
    logged model scores cells in, so ``dev/`` and ``eval/`` metrics and the cells agree."""
    import torch

    from rose.train import evaluate
    from rose.train.run import train

    dtypes, predict = [], evaluate.predict_proba

    def recording(model, *args, **kw):
        hook = model.register_forward_hook(lambda module, inputs, out: dtypes.append(out.logits.dtype))
        try:
            return predict(model, *args, **kw)
        finally:
            hook.remove()

    monkeypatch.setattr(evaluate, "predict_proba", recording)
    train(config(HUMAN, tiny, eval=[HUMAN], bf16="true", log_models=False, max_epochs=1, per_label=3))
    assert dtypes and set(dtypes) == {torch.float32}


def test_a_delta_loads_from_its_recorded_base_without_asking_the_hub(tiny, tmp_path, monkeypatch):
    """The base named by a hub id is taken from the folder recorded at training (digest checked) before the hub is
    asked; where nothing local has it, the hub's error is said, not swallowed."""
    import huggingface_hub
    from transformers import AutoModelForSequenceClassification

    from rose.train.delta import BaseModelError, base_digest, load_classifier, save_delta

    base = tmp_path / "base"
    shutil.copytree(tiny, base)
    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=3)
    folder = save_delta(tmp_path / "clf", model, reference={}, always=set(), base_id="someorg/tiny-base",
                        base_path=base, digest=base_digest(base), max_length=32)  # fmt: skip
    asked = []

    def hub(repo_id, **kw):
        asked.append(repo_id)
        raise huggingface_hub.errors.LocalEntryNotFoundError("offline: no connection to the hub")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", hub)
    assert load_classifier(folder)[2] == [model.config.id2label[i] for i in range(3)]
    assert asked == []
    shutil.rmtree(base)
    with pytest.raises(BaseModelError, match=r"not available here \(.*base does not exist; the hub: .*offline: no "
                       r"connection to the hub\)") as err:  # fmt: skip
        load_classifier(folder)
    assert asked == ["someorg/tiny-base"] and "\n" not in str(err.value)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_serve_answers_invocations(trained, workdir):
    import os

    import httpx

    result, _ = trained
    port = free_port()
    mlflow_bin = Path(sys.executable).parent / "mlflow"
    proc = subprocess.Popen([str(mlflow_bin), "models", "serve", "-m", result.registered, "--env-manager", "local",
                             "-h", "127.0.0.1", "-p", str(port)], cwd=workdir, env=dict(os.environ),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/ping", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(1)
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        reply = httpx.post(f"{url}/invocations", json={"inputs": ["The match ended in a draw.", "Flu season"]},
                           timeout=60)  # fmt: skip
        assert reply.status_code == 200, reply.text
        rows = reply.json()["predictions"]
        assert len(rows) == 2 and "label" in rows[0] and "prob_sports" in rows[0]
        split = {"dataframe_split": {"columns": ["text"], "data": [["Elections next week"]]}}
        assert len(httpx.post(f"{url}/invocations", json=split, timeout=60).json()["predictions"]) == 1
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.mark.slow
def test_offline_e5_encoder_trains(workdir, rose_asset):
    from rose.train.run import train

    path = rose_asset("multilingual-e5-small")
    result = train(config(HUMAN, path, max_epochs=1, per_label=3, eval=[HUMAN], learning_rate=5e-5))
    seed = result.seeds[0].metrics
    full_mb = sum(f.stat().st_size for f in path.glob("*.safetensors")) / 2**20
    assert 0 <= seed["eval/human/macro_f1"] <= 1 and seed["model/artifact_mb"] < full_mb / 4


def test_a_seeds_model_is_freed_before_the_next_seed_is_built(tiny, workdir, monkeypatch):
    """Lightning's trainer and module hold each other: without a collection after each seed, every seed's model
    stayed in memory until the setting ended (the demo's trainings grew by about 0.5 GB a seed)."""
    import weakref

    from rose.train import fit, run

    built, alive_at_build = [], []
    real = fit.build_model

    def recording(setting, seed, config):
        alive_at_build.append(sum(ref() is not None for ref in built))
        model = real(setting, seed, config)
        built.append(weakref.ref(model))
        return model

    monkeypatch.setattr(fit, "build_model", recording)
    run.train(config(HUMAN, tiny, seeds=[1, 2, 3], log_models=False, max_epochs=1, per_label=3))
    assert len(built) == 3 and alive_at_build == [0, 0, 0]


def test_the_module_clips_the_gradient_norm_itself_under_a_fused_optimizer():
    """Clipping in on_before_optimizer_step (Lightning refuses its own with a fused optimizer under mixed
    precision): the gradients' global norm is cut to max_grad_norm; none given, they are left alone."""
    import torch

    from rose.train.module import ClassifierModule

    net = torch.nn.Linear(4, 3)
    for max_norm, expect in ((0.5, 0.5), (None, None)):
        module = ClassifierModule(net, ["a", "b", "c"], max_grad_norm=max_norm)
        optimizer = torch.optim.AdamW(net.parameters(), fused=True)
        for p in net.parameters():
            p.grad = torch.full_like(p, 10.0)
        before = float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in net.parameters()])))
        module.on_before_optimizer_step(optimizer)
        after = float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in net.parameters()])))
        assert after == pytest.approx(expect if expect else before, rel=1e-5)


def test_training_starts_without_mlflow():
    """rose.train.fit (and the delta files it saves) import no MLflow: a fine-tune outside `rose train` (the
    training benchmark, a notebook) does not pay for MLflow's import (about a second)."""
    import subprocess
    import sys

    code = "import sys, rose.train.fit, rose.train.delta; print(sorted(m for m in sys.modules if m.split('.')[0] == 'mlflow'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
