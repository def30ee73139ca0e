"""The frozen trunk computed once (rose.train.trunk): the same results with and without it, and its keying."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from tests.tiny import TOPIC_EN, make_tiny_classifier

HUMAN = f"human:{TOPIC_EN}"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return make_tiny_classifier(tmp_path_factory.mktemp("tiny") / "encoder")


@pytest.fixture(autouse=True)
def trunk_home(tmp_path, monkeypatch):
    """Each test its own disk cache, and a fresh in-process cache."""
    from rose.train import trunk

    monkeypatch.setenv("ROSE_TRUNK_CACHE", str(tmp_path / "trunk"))
    monkeypatch.setattr(trunk, "_CACHE", None)
    yield tmp_path / "trunk"


def _config(tiny, **kw):
    from rose.train.config import TrainConfig

    values = dict(task="topic", language="en", data=HUMAN, classifier=str(tiny), seeds=[1], per_label=4,
                  max_epochs=3, learning_rate=1e-2, batch_size=4, num_threads=1, train_top_layers=1,
                  bf16="false")  # fmt: skip
    values.update(kw)
    return TrainConfig(**values)


def _model(tiny, labels=7):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    return (AutoModelForSequenceClassification.from_pretrained(tiny, num_labels=labels).eval(),
            AutoTokenizer.from_pretrained(tiny))  # fmt: skip


def test_top_pass_on_cached_states_equals_the_full_model(tiny):
    import torch

    from rose.train import trunk

    model, tok = _model(tiny)
    texts = ["The team won the match in the final minute.", "Doctors say", "A longer sentence about the election."]
    ids = tok(texts)["input_ids"]
    full = model(**tok(texts, padding=True, return_tensors="pt")).logits
    for cut in (0, 1, 2):
        states = trunk.states(model, ids, cut, base_digest="sha256:x", max_length=64, pad_id=tok.pad_token_id)
        got = trunk.top_logits(trunk.top_view(model, cut), states)
        assert torch.allclose(got, full, atol=1e-5), cut
    # the last layer runs for the first token only, with the model's own modules
    assert isinstance(trunk.top_view(model, 1).base_model.encoder.layer[-1], trunk.FirstTokenLayer)
    # the view trains the model's own top modules and nothing below them
    view = {id(p) for p in trunk.top_view(model, 1).parameters()}
    below = {id(p) for m in trunk.frozen_modules(model, 1) for p in m.parameters()}
    assert view and not view & below and view <= {id(p) for p in model.parameters()}


def test_key_covers_base_cut_data_length_and_dtype():
    from rose.train.trunk import key

    ids = [[0, 5, 6, 2], [0, 7, 2]]
    k = key("sha256:a", 8, ids, 64, False)
    assert k == key("sha256:a", 8, [list(x) for x in ids], 64, False)
    others = [key("sha256:b", 8, ids, 64, False), key("sha256:a", 7, ids, 64, False),
              key("sha256:a", 8, [[0, 5, 6, 2], [0, 8, 2]], 64, False), key("sha256:a", 8, ids[:1], 64, False),
              key("sha256:a", 8, [[0, 5], [6, 2, 0, 7, 2]], 64, False),  # same tokens, other texts
              key("sha256:a", 8, ids, 128, False), key("sha256:a", 8, ids, 64, True)]  # fmt: skip
    assert len({k, *others}) == len(others) + 1


def test_a_different_cut_base_or_dataset_never_reuses_the_cache(tiny, trunk_home):
    import torch

    from rose.train import trunk

    model, tok = _model(tiny)
    ids = tok(["one text here", "and another one"])["input_ids"]
    first = trunk.states(model, ids, 1, base_digest="sha256:a", max_length=64)
    assert len(list(trunk_home.glob("*.safetensors"))) == 1
    store = trunk.cache()
    assert trunk.states(model, ids, 1, base_digest="sha256:a", max_length=64) is first  # in-process hit
    hits, misses = store.hits, store.misses
    for kwargs in ({"base_digest": "sha256:b"}, {"cut": 2}, {"ids": ids[:1]}):
        args = {"base_digest": "sha256:a", "cut": 1, "ids": ids, **kwargs}
        trunk.states(model, args["ids"], args["cut"], base_digest=args["base_digest"], max_length=64)
    assert (store.hits, store.misses) == (hits, misses + 3)
    assert len(list(trunk_home.glob("*.safetensors"))) == 4
    # another process (a fresh cache object) reads the same states from disk
    again = trunk.TrunkCache(trunk_home).get(trunk.key("sha256:a", 1, ids, 64, False))
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))


def test_memory_bound_drops_the_least_recently_used():
    import torch

    from rose.train.trunk import TrunkCache

    store = TrunkCache(None, max_bytes=3 * 4 * 100)
    for k in "abc":
        store.put(k, [torch.zeros(100)])
    store.get("a")
    store.put("d", [torch.zeros(100)])
    assert store.get("b") is None and all(store.get(k) is not None for k in "acd")


def test_training_with_and_without_the_cache_is_the_same(tiny, trunk_home):
    """The same computation: with the cache the last layer runs for the first token only (FirstTokenLayer), whose
    dropout draws other random masks than the whole layer's, so the two agree without dropout (0 here)."""
    from rose.train.fit import fit_seed, prepare

    cached = prepare(_config(tiny, dropout=0.0))
    plain = prepare(_config(tiny, trunk_cache=False, dropout=0.0))
    a, b = fit_seed(cached, 3), fit_seed(plain, 3)
    assert list(trunk_home.glob("*.safetensors")), "the cached run wrote its trunk"
    assert a.epochs == b.epochs and a.best_epoch == b.best_epoch
    for ha, hb in zip(a.history, b.history, strict=True):
        for k in ha:
            assert ha[k] == pytest.approx(hb[k], abs=1e-5), k
    assert a.dev_metrics == pytest.approx(b.dev_metrics, abs=1e-6)
    # same predictions (weights agree to float noise; the key biases, whose gradient is zero but for rounding, are
    # that noise scaled up by Adam, and change nothing)
    from rose.train.evaluate import predict_proba

    texts = plain.train_data.texts
    pa, pb = (predict_proba(r.model, plain.tokenizer, texts, max_length=64) for r in (a, b))
    assert np.allclose(pa, pb, atol=1e-4) and (pa.argmax(1) == pb.argmax(1)).all()
    # a second seed reads the trunk from the cache, for its training and (in fp32, the same entry) its dev split:
    # nothing is computed again
    from rose.train import trunk

    hits, misses = trunk.cache().hits, trunk.cache().misses
    fit_seed(cached, 4)
    assert trunk.cache().hits == hits + 2 and trunk.cache().misses == misses


def test_frozen_layers_run_without_dropout(tiny):
    from rose.train.fit import build_model, prepare
    from rose.train.module import ClassifierModule
    from rose.train.trunk import frozen_modules

    setting = prepare(_config(tiny, dropout=0.5))
    model = build_model(setting, 1, setting.config)
    frozen = frozen_modules(model, 1)
    module = ClassifierModule(model, setting.label_names, frozen=frozen).train()
    assert not any(m.training for f in frozen for m in f.modules())
    assert model.base_model.encoder.layer[1].training and model.classifier.training
    assert dataclasses.asdict(setting.config)["trunk_cache"] and "trunk_cache" not in setting.config.setting()
    assert setting.config.setting()["frozen_layers"] == "eval"
    assert module.training


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("ROSE_HOME", str(tmp_path / "home"))
    return tmp_path


def _generate_run(experiment: str, folder: Path) -> str:
    """A finished generate run holding topic/en examples (a cell's dataset)."""
    import mlflow

    from rose import tracking
    from tests.tiny import human_rows, write_dataset

    exp = tracking.setup(experiment)
    client = mlflow.MlflowClient()
    tags = tracking.tags("generate", "topic", "en", candidate="gen-a__zs", generator="gen-a", strategy="zs")
    run = client.create_run(exp, tags=tags).info.run_id
    write_dataset(folder / "dataset" / "data.jsonl", human_rows(split="dev", per_label=4), candidate="gen-a__zs")
    client.log_artifacts(run, str(folder / "dataset"), "dataset")
    client.set_terminated(run)
    return run


def test_cells_with_and_without_the_trunk_agree(tiny, store):
    import mlflow

    from rose.train import pool, trunk
    from rose.train.cells import evaluate_cells, seed_scores
    from rose.train.run import train

    result = train(_config(tiny, seeds=[1, 2], experiment="cells", max_epochs=2))
    refs = [HUMAN, _generate_run("cells", store / "gen")]
    pool.pool().clear()
    loads, hits, misses = pool.pool().loads, trunk.cache().hits, trunk.cache().misses
    plain = evaluate_cells("cells-plain", result.parent_run_id, refs, trunk=False)
    assert (pool.pool().loads, trunk.cache().misses) == (loads, misses)  # the pyfunc path: no trunk, no pool
    fast = evaluate_cells("cells-trunk", result.parent_run_id, refs, trunk=True)
    assert pool.pool().loads == loads + 1, "the base is loaded once for both seeds"
    assert trunk.cache().misses == misses + 2, "one trunk per dataset (cells score in fp32, training here too)"
    assert trunk.cache().hits == hits + 2, "the second seed reads both from the cache"
    client = mlflow.MlflowClient()
    for a, b in zip(plain, fast, strict=True):
        sa, sb = (seed_scores(client.get_run(r).data.metrics) for r in (a, b))
        assert sa.keys() == sb.keys() == {1, 2}
        for seed in sa:
            assert sa[seed] == pytest.approx(sb[seed], abs=1e-6)
    pool.pool().clear()
    assert len(pool.pool()) == 0


def test_model_pool_is_bounded_and_released():
    import gc
    import weakref

    import torch

    from rose.train.pool import ModelPool

    made = []

    def load(n):
        def make():
            model = torch.nn.Linear(n, n, bias=False)  # n*n*4 bytes
            made.append(weakref.ref(model))
            return model

        return make

    models = ModelPool(max_bytes=2 * 64 * 64 * 4)
    a = models.get("a", load(64))
    assert models.get("a", load(64)) is a and models.loads == 1  # reused, not loaded again
    models.get("b", load(64))
    models.get("c", load(64))  # past the bound: the least recently used ("a") goes
    assert "a" not in models and {"b", "c"} <= {k for k in ("a", "b", "c") if k in models}
    assert models.bytes <= models.max_bytes
    del a
    gc.collect()
    assert made[0]() is None, "a model let go is released"
    models.clear()
    gc.collect()
    assert len(models) == 0 and all(ref() is None for ref in made)


def test_settings_of_one_base_read_its_tokenizer_and_weights_once_and_a_rewritten_base_again(tmp_path):
    """A worker training setting after setting (rose.train.pool): the tokenizer and the reference weights of a base
    are loaded once; a base rewritten in place (other weights) is read again; each seed still gets its own model."""
    import torch

    from rose.train import pool
    from rose.train.fit import build_model, prepare

    base = make_tiny_classifier(tmp_path / "encoder")
    pool.pool().clear()
    first = prepare(_config(base))
    loads = pool.pool().loads
    second = prepare(_config(base, per_label=3))
    assert pool.pool().loads == loads, "the second setting on the same base loaded nothing again"
    assert second.tokenizer is first.tokenizer and second.reference is first.reference
    model = build_model(second, 1, second.config)
    with torch.no_grad():
        next(model.parameters()).add_(1.0)  # training a seed's model never touches the shared reference
    assert all(torch.equal(v, first.reference[k]) for k, v in second.reference.items())
    (base / "model.safetensors").unlink()
    make_tiny_classifier(base, seed=7)  # the same folder, other weights
    third = prepare(_config(base))
    assert pool.pool().loads > loads and third.base_digest != first.base_digest
    assert any(not torch.equal(v, first.reference[k]) for k, v in third.reference.items())
    pool.pool().clear()


@pytest.mark.parametrize("attention", ["eager", "sdpa"])
def test_first_token_layer_equals_the_whole_last_layer(tiny, attention):
    """Under either attention implementation (an additive float mask, or a boolean one), padded rows included."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from rose.train import trunk

    model = AutoModelForSequenceClassification.from_pretrained(tiny, num_labels=3, attn_implementation=attention)
    model.eval()
    tok = AutoTokenizer.from_pretrained(tiny)
    texts = ["a short one", "a much longer text about the match, the team and the final minute of the game"]
    with torch.no_grad():
        full = model(**tok(texts, padding=True, return_tensors="pt")).logits
    states = trunk.compute(model, tok(texts)["input_ids"], 1)
    view = trunk.top_view(model, 1)
    assert isinstance(view.base_model.encoder.layer[-1], trunk.FirstTokenLayer)
    assert torch.allclose(trunk.top_logits(view, states, batch_size=2), full, atol=1e-5)


def test_a_trained_seed_scores_texts_above_the_trunk_as_its_whole_model_does(tiny, trunk_home):
    """rose.train.fit.predict (dev split, evaluation sets) reads the cached trunk: the same probabilities as the
    whole model's forward pass in fp32, and the evaluation set's trunk is cached for the cells on it."""
    from rose.train import trunk
    from rose.train.evaluate import predict_proba
    from rose.train.fit import fit_seed, predict, prepare

    setting = prepare(_config(tiny))
    fitted = fit_seed(setting, 1)
    assert fitted.cut == 1
    texts = ["The team won the match in the final minute.", "Doctors say", "A longer sentence about the election."]
    misses = trunk.cache().misses
    got = predict(setting, fitted, texts)
    assert trunk.cache().misses == misses + 1  # computed once, then read
    full = predict_proba(fitted.model, setting.tokenizer, texts, max_length=64)
    assert np.allclose(got, full, atol=1e-5)
    assert np.allclose(predict(setting, fitted, texts), got) and trunk.cache().misses == misses + 1
    plain = prepare(_config(tiny, trunk_cache=False))
    assert fit_seed(plain, 1).cut == 0  # no cache: the whole model scores
