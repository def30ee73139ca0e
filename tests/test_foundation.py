"""The foundation: built-in tasks and languages, loaders on the shared data, names, config mapping, tracking schema, CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rose import config, human_data, naming, tasks
from rose.errors import RoseError
from rose.languages import STUDY_LANGUAGES, get_language
from tests.tiny import SHARED_DATA as SHARED
from tests.tiny import needs_shared


# --- built-in tasks and languages ----------------------------------------------------------------------------
def test_builtin_tasks_and_any_language():
    assert len(tasks.get_task("topic").labels) == 7
    assert len(tasks.get_task("intent").labels) == 10
    assert len(tasks.get_task("intent_all").labels) == 60
    assert tasks.get_task("sentiment").labels == ("negative", "positive")
    assert get_language("Welsh").code == "cy" and get_language("cym") == get_language("cy")
    assert tasks.get_task("topic").hub("cy") == ("Davlan/sib200", "cym_Latn")
    assert get_language("amh") == get_language("am") and get_language("am").to_dict() == {
        "code": "am",
        "name": "Amharic",
        "script": "Ethi",
    }
    assert get_language("yor").name == "Yoruba" and get_language("xyz", "Made-up").name == "Made-up"


@pytest.mark.parametrize(
    "call",
    [
        lambda: tasks.get_task("topik"),
        lambda: get_language("xx"),
        lambda: tasks.check_label(tasks.get_task("topic"), "cooking"),
    ],
)
def test_unknown_names_give_one_line_errors(call):
    with pytest.raises(RoseError) as exc:
        call()
    assert "\n" not in str(exc.value) and any(w in str(exc.value) for w in ("choose", "use one of", "ISO 639"))


def test_lingua_names_exist():
    from lingua import Language

    for lang in map(get_language, STUDY_LANGUAGES):
        assert getattr(Language, lang.lingua)
    assert get_language("am").lingua == ""  # lingua lacks Amharic


# --- loaders on the shared data ------------------------------------------------------------------------------
@needs_shared
@pytest.mark.parametrize("lang", sorted(STUDY_LANGUAGES))
def test_sib200_split_sizes(lang):
    assert [len(human_data.load_split("topic", lang, s, SHARED)) for s in human_data.SPLITS] == [701, 99, 204]


@needs_shared
def test_massive10_subset_and_parallel_ids():
    train = human_data.load_split("intent", "cy", "train", SHARED)
    test = human_data.load_split("intent", "cy", "test", SHARED)
    assert (len(train), len(test)) == (2027, 565)
    assert set(train.labels) == set(tasks.get_task("intent").labels)
    assert train.dropped["label outside task"] == 11514 - 2027


@needs_shared
def test_sentiment_drops_neutral_and_refuses_missing_language():
    sw = human_data.load_split("sentiment", "sw", "train", SHARED)
    assert set(sw.labels) == {"negative", "positive"} and sw.dropped["label outside task"] == 1072
    with pytest.raises(
        RoseError, match=r"no human train data of task 'sentiment' in Welsh \(cy\): no file .*sentiment/cy/train.jsonl"
    ):
        human_data.load_split("sentiment", "cy", "train", SHARED)


@needs_shared
def test_summary_counts(capsys):
    from rose.cli import main

    assert main(["data", "summary", "--task", "topic", "--language", "cy", "--source", str(SHARED)]) == 0
    out = capsys.readouterr().out
    assert "total" in out and "701" in out and "99" in out and "204" in out


def test_jsonl_csv_parquet_with_column_mapping(tmp_path):
    rows = [
        {"sentence": "The match ended 2-1.", "topic": "sports"},
        {"sentence": "", "topic": "sports"},
        {"sentence": "Rain tomorrow.", "topic": "weather"},
        {"sentence": "New vaccine.", "topic": "health"},
    ]
    jl = tmp_path / "d.jsonl"
    jl.write_text("\n".join(json.dumps(r) for r in rows))
    import pandas as pd

    pd.DataFrame(rows).to_csv(tmp_path / "d.csv", index=False)
    pd.DataFrame(rows).to_parquet(tmp_path / "d.parquet")
    for path in (jl, tmp_path / "d.csv", tmp_path / "d.parquet"):
        d = human_data.load_split("topic", "en", "train", path, text_column="sentence", label_column="topic")
        assert d.texts == ["The match ended 2-1.", "New vaccine."]
        assert d.dropped == {"empty text": 1, "label outside task": 1}


def test_malformed_row_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "a", "label": "sports"}\n{"text": "b", "label": \n')
    with pytest.raises(RoseError, match=r"bad.jsonl:2: not valid JSON"):
        human_data.load_split("topic", "en", "train", path)
    path.write_text('{"sentence": "a", "label": "sports"}\n')
    with pytest.raises(RoseError, match=r"bad.jsonl:1: no column 'text'.*pass --text-column"):
        human_data.load_split("topic", "en", "train", path)
    with pytest.raises(RoseError, match="no such file"):
        human_data.load_split("topic", "en", "train", tmp_path / "missing.jsonl")
    with pytest.raises(
        RoseError, match=r"no human train data of task 'topic' in English \(en\): no file .*sib200/en/train"
    ):
        human_data.load_split("topic", "en", "train", tmp_path)


def _toy(n_per_label=20, labels=("a", "b", "c")) -> human_data.LabelledData:
    texts, labs = [], []
    for lab in labels:
        for i in range(n_per_label):
            texts.append(f"{lab} example number {i} " + "word " * (i % 7))
            labs.append(lab)
    return human_data.LabelledData(texts, labs)


def test_seeded_demonstrations_and_word_limit():
    d = _toy()
    a = human_data.sample_demonstrations(d, ["a", "b", "c", "z"], k=5, seed=3, max_words=4)
    b = human_data.sample_demonstrations(d, ["a", "b", "c", "z"], k=5, seed=3, max_words=4)
    c = human_data.sample_demonstrations(d, ["a", "b", "c", "z"], k=5, seed=4, max_words=4)
    assert a == b and a != c
    assert all(len(v) == 5 for k, v in a.items() if k != "z") and a["z"] == []
    assert all(len(t.split()) <= 4 for v in a.values() for t in v)
    assert all(t.startswith("a ") for t in a["a"])


def test_cap_and_stratified_split():
    d = _toy(n_per_label=20)
    capped = human_data.cap_per_label(d, 7, seed=1)
    assert capped.counts() == {"a": 7, "b": 7, "c": 7}
    assert human_data.cap_per_label(d, 7, seed=1).texts == capped.texts
    train, dev = human_data.stratified_split(d, 0.1, seed=0)
    assert dev.counts() == {"a": 2, "b": 2, "c": 2} and len(train) == 54
    assert not set(train.texts) & set(dev.texts)
    tiny = human_data.LabelledData(["x", "y", "z"], ["a", "a", "b"])
    tr, dv = human_data.stratified_split(tiny, 0.1, seed=0)
    assert dv.counts() == {"a": 1} and tr.counts() == {"a": 1, "b": 1}


# --- names ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "generator",
    [
        "google/gemma-3-4b-it",
        "/models/My Model:v2/",
        "llama3:8b",
        "C:\\m\\x y",
        "hf.co/org/repo:Q4_K_M",
        "smollm2-135m-instruct",
        "Ünïcode model",
    ],
)
def test_names_are_safe_and_stable(generator):
    name = naming.candidate_name(generator, "target_demos_sl_revision")
    assert name == naming.candidate_name(generator, "target_demos_sl_revision")
    assert set(name) <= set("abcdefghijklmnopqrstuvwxyz0123456789._-")
    assert name.endswith("__target_demos_sl_revision")


def test_names_stay_readable_and_distinct():
    assert naming.generator_name("google/gemma-3-4b-it") == "google-gemma-3-4b-it"
    assert naming.generator_name("/a/model") != naming.generator_name("/b/model")
    assert naming.generator_name("/a/model").startswith("model-")
    assert naming.metric_key("eval", "human", "f1", "science/technology") == "eval/human/f1/science-technology"


# --- config mapping ------------------------------------------------------------------------------------------
def test_config_fields_map_to_flags_and_yaml():
    import argparse
    from dataclasses import dataclass

    @dataclass
    class Cfg:
        task: str = config.field(help="task")
        seeds: list[int] = config.field([1, 2], help="seeds")
        lr: float = config.field(1e-5, help="learning rate")
        freeze: bool = config.field(False, help="freeze")
        cap: int | None = config.field(None, help="cap")

    p = argparse.ArgumentParser()
    config.add_arguments(p, Cfg)
    cfg = config.from_args(Cfg, p.parse_args(["--task", "topic", "--seeds", "1-3,7", "--freeze", "--lr", "2e-5"]))
    assert cfg == Cfg(task="topic", seeds=[1, 2, 3, 7], lr=2e-5, freeze=True, cap=None)
    assert config.from_mapping(Cfg, {"task": "t", "cap": "none"}).cap is None
    with pytest.raises(RoseError, match="unknown setting 'lr_rate'"):
        config.from_mapping(Cfg, {"task": "t", "lr_rate": 1}, where="study.yaml")
    with pytest.raises(RoseError, match="missing required setting.*--task"):
        config.from_mapping(Cfg, {})
    with pytest.raises(RoseError, match="--lr: expected a number"):
        config.from_mapping(Cfg, {"task": "t", "lr": "fast"})


# --- tracking ------------------------------------------------------------------------------------------------
def test_tracking_defaults_to_sqlite_in_project_dir(tmp_path, monkeypatch):
    from rose import tracking

    (tmp_path / "MLproject").write_text("name: x\n")
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking.tracking_uri() == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking.tracking_uri() == "http://127.0.0.1:5000"


def test_tags_search_and_find_finished(tmp_path, monkeypatch):
    import mlflow

    from rose import tracking

    (tmp_path / "MLproject").write_text("name: x\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    tracking.setup("study")
    assert mlflow.get_experiment_by_name("study").artifact_location == (tmp_path / "mlartifacts").as_uri()
    t = tracking.tags("generate", "topic", "en", candidate="a__b", digest="d1")
    assert t["rose.stage"] == "generate" and t["rose.candidate"] == "a__b"
    with tracking.run("one", t, params={"k": [1, 2], "n": None}):
        pass
    with pytest.raises(RuntimeError):
        with tracking.run("two", tracking.tags("generate", "topic", "en", digest="d2")):
            raise RuntimeError("crash")
    assert tracking.find_finished("study", "generate", "d1").data.params == {"k": "[1, 2]"}
    assert tracking.find_finished("study", "generate", "d2") is None  # failed runs do not count as done
    assert len(tracking.search_runs("study", stage="generate", finished_only=False)) == 2
    assert tracking.digest({"a": 1, "b": [2]}) == tracking.digest({"b": [2], "a": 1})


# --- the command line ----------------------------------------------------------------------------------------
def test_import_and_help_do_not_import_heavy_modules():
    code = (
        "import sys, time; t = time.time(); import rose, rose.cli; rose.cli.build_parser().format_help(); "
        "heavy = [m for m in ('torch', 'transformers', 'mlflow', 'lightning', 'pandas') if m in sys.modules]; "
        "print(heavy, time.time() - t)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == "[]", out


@pytest.mark.parametrize("command", ["generate", "train", "score", "tune", "pipeline", "assets", "data"])
def test_every_subcommand_has_help(command):
    proc = subprocess.run([sys.executable, "-m", "rose.cli", command, "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "usage: rose" in proc.stdout


def test_cli_errors_are_one_line(capsys):
    from rose.cli import main

    assert main(["data", "summary", "--task", "nope", "--language", "en"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("rose data: error: unknown task 'nope'") and "\n" not in err


def test_source_auto_falls_back_to_shipped_examples(tmp_path, monkeypatch):
    from rose.tasks import get_task

    (tmp_path / "MLproject").write_text("name: x\n")
    monkeypatch.chdir(tmp_path)  # no ../shared/data beside this project
    monkeypatch.setattr(human_data, "_hub_reachable", lambda timeout=2.0: False)
    topic, en = get_task("topic"), get_language("en")
    assert human_data.resolve_source("auto", topic, en) == human_data.BUNDLED
    train, test = (
        human_data.load_split("topic", "en", "train", "auto"),
        human_data.load_split("topic", "en", "test", "auto"),
    )
    assert set(train.labels) == set(test.labels) == set(topic.labels) and not set(train.texts) & set(test.texts)
    monkeypatch.setattr(human_data, "_hub_reachable", lambda timeout=2.0: True)
    assert human_data.resolve_source("auto", topic, en) == "hub"
    with pytest.raises(RoseError, match="ships examples only for topic/en"):
        monkeypatch.setattr(human_data, "_hub_reachable", lambda timeout=2.0: False)
        human_data.resolve_source("auto", get_task("intent"), get_language("cy"))


@needs_shared
def test_source_auto_prefers_shared_data(monkeypatch):
    from rose.tasks import get_task

    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    source = human_data.resolve_source("auto", get_task("topic"), get_language("cy"))
    assert Path(source).resolve() == SHARED.resolve()


def test_bundled_english_topic_data_loads_and_summarises(capsys):
    from rose.cli import main
    from tests.tiny import BUNDLED

    sizes = [len(human_data.load_split("topic", "en", s, BUNDLED)) for s in human_data.SPLITS]
    assert sizes == [63, 7, 21]
    assert human_data.load_split("topic", "en", "test", BUNDLED).counts() == dict.fromkeys(
        tasks.get_task("topic").labels, 3
    )
    assert main(["data", "summary", "--task", "topic", "--language", "en", "--source", str(BUNDLED)]) == 0
    assert "total" in capsys.readouterr().out
