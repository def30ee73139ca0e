"""Bring your own data: column and label mapping, ``rose data import``, imported candidates in train, score and
studies. Files made elsewhere are the Llama-3-70B sets in ../shared/data/synthetic (when present) or files built
here from rose's bundled English topic sentences."""

from __future__ import annotations

import csv
import json
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from rose.errors import RoseError
from rose.tasks import get_task
from tests.fakes import use_tracking_db
from tests.tiny import BUNDLED, SHARED_DATA, TOPIC_EN, make_tiny_classifier, needs_shared

LLAMA = SHARED_DATA / "synthetic" / "llama3-70b"
TOPIC = get_task("topic").labels
IDS = ",".join(f"{i}={label}" for i, label in enumerate(TOPIC))


def bundled_rows(split: str = "train") -> list[dict]:
    with (BUNDLED / "sib200" / "en" / f"{split}.jsonl").open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def third_party_csv(path: Path, rows: list[dict] | None = None) -> Path:
    """A file shaped like the published Llama-3-70B sets: unnamed index, ``Unnamed: 0``, text, intent (the
    label), label (an integer id)."""
    rows = bundled_rows() if rows is None else rows
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["", "Unnamed: 0", "text", "intent", "label"])
        for i, row in enumerate(rows):
            writer.writerow([i, f"{i}.0", row["text"], row["label"], TOPIC.index(row["label"])])
    return path


@pytest.fixture
def store(tmp_path, monkeypatch) -> Path:
    use_tracking_db(tmp_path, monkeypatch)
    return tmp_path


def import_config(data, **kw):
    from rose.importing import ImportConfig

    values = dict(task="topic", language="en", data=str(data), experiment="byod")
    values.update(kw)
    return ImportConfig(**values)


def runs(experiment: str = "byod", **tags):
    from rose.tracking import search_runs

    return search_runs(experiment, finished_only=False, **tags)


# --- column and label mapping ------------------------------------------------------------------------------------
def test_integer_label_column_names_the_column_holding_labels(tmp_path):
    from rose.generated_data import load_ref

    path = third_party_csv(tmp_path / "topic.csv")
    with pytest.raises(RoseError, match=r"column 'label' holds integers \(0, 1, 2, 3, ...\).*--label-column intent"):
        load_ref(str(path), "topic", "en")
    data = load_ref(str(path), "topic", "en", label_column="intent")
    assert data.counts() == Counter(r["label"] for r in bundled_rows())


@pytest.mark.parametrize("kind", ["inline", "json", "json-list", "csv", "txt-lines", "txt-pairs"])
def test_label_map_inline_or_file_maps_integer_ids(tmp_path, kind):
    from rose.generated_data import load_ref

    path = third_party_csv(tmp_path / "topic.csv")
    files = {
        "json": ("map.json", json.dumps({str(i): lab for i, lab in enumerate(TOPIC)})),
        "json-list": ("map.json", json.dumps(list(TOPIC))),
        "csv": ("map.csv", "key,label\n" + "\n".join(f"{i},{lab}" for i, lab in enumerate(TOPIC))),
        "txt-lines": ("map.txt", "\n".join(TOPIC)),
        "txt-pairs": ("map.txt", "\n".join(f"{i}={lab}" for i, lab in enumerate(TOPIC))),
    }
    if kind == "inline":
        spec = IDS
    else:
        name, text = files[kind]
        (tmp_path / name).write_text(text, encoding="utf-8")
        spec = str(tmp_path / name)
    data = load_ref(str(path), "topic", "en", label_map=spec)
    assert data.labels == [r["label"] for r in bundled_rows()]


def test_labels_are_checked_after_mapping(tmp_path):
    from rose.generated_data import load_ref

    path = third_party_csv(tmp_path / "topic.csv")
    with pytest.raises(RoseError, match=r"'scitech' not a label of task 'topic'"):
        load_ref(str(path), "topic", "en", label_map="0=scitech,1=travel")
    with pytest.raises(RoseError, match=r"topic.csv:\d+: label '2' is not a label of task 'topic'"):
        load_ref(str(path), "topic", "en", label_map="0=science/technology,1=travel")  # ids 2..6 unmapped
    with pytest.raises(RoseError, match=r"'zero' is not KEY=LABEL"):
        load_ref(str(path), "topic", "en", label_map="0=travel,zero")
    with pytest.raises(RoseError, match=r"no column 'sentence'.*--text-column"):
        load_ref(str(path), "topic", "en", text_column="sentence", label_column="intent")


def test_train_and_generate_take_the_column_flags():
    from rose.cli import build_parser
    from rose.config import from_args
    from rose.generate.config import GenerateConfig
    from rose.train.config import TrainConfig

    parser = build_parser()
    args = parser.parse_args(["train", "--task", "topic", "--language", "en", "--data", "x.csv",
                              "--label-column", "intent", "--label-map", IDS])  # fmt: skip
    cfg = from_args(TrainConfig, args)
    assert (cfg.label_column, cfg.label_map, cfg.text_column) == ("intent", IDS, "")
    args = parser.parse_args(["generate", "--task", "topic", "--language", "en", "--generator", "g",
                              "--source", "x.csv", "--text-column", "sentence"])  # fmt: skip
    assert from_args(GenerateConfig, args).text_column == "sentence"


def test_generate_reads_demonstrations_from_a_mapped_file(tmp_path, monkeypatch):
    from tests.fakes import fake_generate

    rows = [{"sentence": r["text"], "topic_id": TOPIC.index(r["label"])} for r in bundled_rows()]
    source = tmp_path / "demos.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    result = fake_generate(tmp_path, monkeypatch, language="en", source=str(source), text_column="sentence",
                           label_column="topic_id", label_map=IDS, per_label=3, examples_per_request=3)  # fmt: skip
    demos = json.loads((result.dataset_path.parent / "demonstrations.json").read_text())["demonstrations"]
    by_label = {lab: {r["sentence"] for r in rows if TOPIC[r["topic_id"]] == lab} for lab in TOPIC}
    assert all(demos[lab] and set(demos[lab]) <= by_label[lab] for lab in TOPIC)


# --- rose data import ----------------------------------------------------------------------------------------------
@needs_shared
@pytest.mark.parametrize(
    "task, rows, kept, duplicates",
    [("topic", 1370, 1370, 0), ("intent", 1966, 1964, 2), ("sentiment", 396, 396, 0)],
)
def test_llama3_70b_files_import_with_their_label_counts(store, task, rows, kept, duplicates):
    import mlflow

    from rose.importing import import_dataset

    path = LLAMA / f"{task}-en.csv"
    expected = Counter(r["intent"] for r in csv.DictReader(path.open(encoding="utf-8")))
    result = import_dataset(import_config(path, task=task, candidate="llama3-70b", label_column="intent",
                                          generator="meta-llama/Meta-Llama-3-70B-Instruct"))  # fmt: skip
    run = mlflow.MlflowClient().get_run(result.run_id)
    tags, metrics = run.data.tags, run.data.metrics
    assert run.info.run_name == "import · llama3-70b" and run.info.status == "FINISHED"
    assert {k: tags[f"rose.{k}"] for k in ("stage", "origin", "candidate", "generator", "strategy", "task")} == {
        "stage": "generate", "origin": "imported", "candidate": "llama3-70b",
        "generator": "meta-llama/Meta-Llama-3-70B-Instruct", "strategy": "imported", "task": task,
    }  # fmt: skip
    assert metrics["rows_read"] == rows and metrics["kept_total"] == kept
    assert metrics["duplicates_dropped"] == duplicates and len(result.kept) == len(get_task(task).labels)
    if not duplicates:
        assert result.kept == dict(expected)
    from rose.naming import metric_key

    assert {lab: metrics[metric_key("kept", label=lab)] for lab in result.kept} == result.kept
    assert not [k for k in metrics if k.startswith("intrinsic/")]  # measured by score, with its tools
    files = {a.path for a in mlflow.MlflowClient().list_artifacts(result.run_id, "dataset")}
    assert {"dataset/data.jsonl", "dataset/data.parquet"} <= files
    assert [i.dataset.name for i in run.inputs.dataset_inputs] == ["llama3-70b"]
    again = import_dataset(import_config(path, task=task, candidate="llama3-70b", label_column="intent",
                                         generator="meta-llama/Meta-Llama-3-70B-Instruct"))  # fmt: skip
    assert again.reused and again.run_id == result.run_id and len(runs(stage="generate")) == 1


def test_import_cli_error_is_one_line_and_leaves_no_run(store, tmp_path, capsys):
    from rose.cli import main

    path = third_party_csv(tmp_path / "topic.csv")
    argv = ["data", "import", "--task", "topic", "--language", "en", "--data", str(path), "--candidate", "vendor",
            "--experiment", "byod"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "use --label-column intent" in err
    assert runs() == []
    assert main([*argv, "--label-map", IDS]) == 0
    assert "candidate: vendor (63 examples)" in capsys.readouterr().out


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: _jsonl(p, [{"sentence": "a", "label": "travel"}]), r"no column 'text'.*--text-column"),
        (lambda p: _jsonl(p, []), r"the dataset is empty"),
        (
            lambda p: _jsonl(p, [{"text": "a", "label": "travel"}, {"text": "b", "label": "cooking"}]),
            r"data.jsonl:2: label 'cooking' is not a label of task 'topic'",
        ),
        (
            lambda p: _jsonl(
                p, [{"text": r["text"], "label": r["label"]} for r in bundled_rows() if r["label"] != "geography"]
            ),  # fmt: skip
            r"no examples of label\(s\) geography",
        ),
        (lambda p: _jsonl(p, [{"text": " ", "label": "travel"}]), r"no rows left to import \(dropped: empty_dropped 1"),
        (lambda p: p.with_suffix(".xlsx").write_text("x") and p.with_suffix(".xlsx"), r"unsupported file type"),
    ],
    ids=["no-text-column", "empty", "unknown-label", "label-without-examples", "only-empty-texts", "bad-type"],
)
def test_malformed_files_are_one_line_errors_and_import_nothing(store, tmp_path, make, message):
    from rose.importing import import_dataset

    path = make(tmp_path / "data.jsonl")
    with pytest.raises(RoseError, match=message):
        import_dataset(import_config(path, candidate="bad"))
    assert runs() == [] and not (store / ".rose" / "import").exists()


def test_a_failure_while_logging_leaves_no_run_behind(store, tmp_path, monkeypatch):
    from rose import generated_data
    from rose.importing import import_dataset

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(generated_data, "log_input", broken)
    with pytest.raises(OSError, match="disk full"):
        import_dataset(import_config(third_party_csv(tmp_path / "vendor.csv"), label_column="intent"))
    assert runs() == []


def test_duplicates_and_empty_texts_are_dropped_counted_and_kept_aside(store, tmp_path):
    import mlflow

    from rose.generated_data import download_dataset, read_jsonl
    from rose.importing import import_dataset

    rows = bundled_rows()
    extra = [
        rows[0],
        {"text": "  " + rows[1]["text"] + " ", "label": rows[1]["label"]},
        {"text": "", "label": "travel"},
    ]
    path = _jsonl(tmp_path / "vendor.jsonl", rows + extra)
    result = import_dataset(import_config(path))
    assert result.candidate == "vendor" and sum(result.kept.values()) == len(rows)
    metrics = mlflow.MlflowClient().get_run(result.run_id).data.metrics
    assert (metrics["duplicates_dropped"], metrics["empty_dropped"], metrics["rows_read"]) == (2, 1, len(rows) + 3)
    rejected = read_jsonl(download_dataset(result.run_id).parent / "rejected.jsonl")
    assert [r["reason"] for r in rejected] == ["duplicate", "duplicate"]


def test_a_datasets_folder_with_class_labels_imports(store, tmp_path):
    datasets = pytest.importorskip("datasets")
    from rose.importing import import_dataset

    rows = bundled_rows()
    features = datasets.Features({"text": datasets.Value("string"), "topic": datasets.ClassLabel(names=list(TOPIC))})
    ds = datasets.Dataset.from_dict(
        {"text": [r["text"] for r in rows], "topic": [TOPIC.index(r["label"]) for r in rows]}, features=features
    )
    datasets.DatasetDict({"train": ds}).save_to_disk(str(tmp_path / "vendor-set"))
    result = import_dataset(import_config(tmp_path / "vendor-set", label_column="topic"))
    assert result.candidate == "vendor-set" and result.kept == dict(Counter(r["label"] for r in rows))
    with pytest.raises(RoseError, match=r"no split 'test' \(splits: train\)"):
        import_dataset(import_config(tmp_path / "vendor-set", label_column="topic", split="test"))


# --- imported candidates in training, score and studies -------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return make_tiny_classifier(tmp_path_factory.mktemp("tiny") / "encoder")


def study_yaml(folder: Path, tiny: Path, imported: str) -> Path:
    path = folder / "study.yaml"
    path.write_text(
        textwrap.dedent(f"""\
        experiment: byod-study
        tasks: [topic]
        languages: [en]
        source: {TOPIC_EN}
        candidates:
          - {{generator: fake-a, strategy: zero_shot}}
          - {{generator: fake-b, strategy: target_demos}}
          - {imported}
        generate: {{backend: fake, per_label: 6, examples_per_request: 6, cache_dir: {folder / "cache"}}}
        train: {{classifier: {tiny}, seeds: [1], per_label: 6, max_epochs: 1, learning_rate: 1.0e-3,
                 batch_size: 8, num_threads: 1}}
        score: {{reference_lm: "", embedding_model: "", tokenizer: "", intrinsic_sample: 20, bootstrap: 20}}
        """)
    )
    return path


@pytest.mark.slow
def test_study_mixing_generated_and_imported_candidates_runs_end_to_end(store, tiny):
    import mlflow

    from rose.pipeline.run import run_pipeline
    from rose.pipeline.study import load_study

    if LLAMA.exists():
        imported = f"{{data: {LLAMA / 'topic-en.csv'}, name: llama3-70b, text_column: text, label_column: intent}}"
    else:
        third_party_csv(store / "vendor.csv")
        imported = f'{{data: vendor.csv, name: llama3-70b, label_map: "{IDS}"}}'
    path = study_yaml(store, tiny, imported)
    study = load_study(path)
    assert [c.name for c in study.candidates] == ["fake-a__zero_shot", "fake-b__target_demos", "llama3-70b"]
    result = run_pipeline(path)
    assert result.score_runs
    done = runs("byod-study")
    gen = {r.data.tags["rose.candidate"]: r for r in done if r.data.tags["rose.stage"] == "generate"}
    assert gen["llama3-70b"].data.tags["rose.origin"] == "imported" and gen["llama3-70b"].info.run_name == (
        "import · llama3-70b"
    )
    assert gen["fake-a__zero_shot"].info.run_name == "generate · fake-a__zero_shot"
    names = {r.info.run_name for r in done}
    assert {"train · llama3-70b", "seed 1", "score · topic/en"} <= names
    trains = {
        r.info.run_id: r.data.tags.get("rose.train_data") for r in done if r.data.tags.get("rose.role") == "setting"
    }
    cells = {(trains.get(r.data.tags["rose.train_run_id"]), r.data.tags["rose.eval_set"])
             for r in done if r.data.tags["rose.stage"] == "evaluate"}  # fmt: skip
    names = [c.name for c in study.candidates]
    assert {(a, b) for a in names for b in names if a != b} <= cells  # llama3-70b both ways, like the others
    score_run = mlflow.MlflowClient().get_run(result.score_runs[0])
    assert {f"rose/{c.name}" for c in study.candidates} <= set(score_run.data.metrics)
    assert "intrinsic/distinct_2" in gen["llama3-70b"].data.metrics
    assert run_pipeline(path).ran == 0  # everything done: nothing runs again


def test_study_refuses_a_bad_imported_candidate(tmp_path, tiny):
    from rose.pipeline.study import load_study

    path = study_yaml(tmp_path, tiny, "{data: missing.csv, name: vendor}")
    with pytest.raises(RoseError, match=r"study.yaml:8: no such file: missing.csv"):
        load_study(path)
    path = study_yaml(tmp_path, tiny, "{data: missing.csv}")
    with pytest.raises(RoseError, match=r"study.yaml:8: an imported candidate needs `name:`"):
        load_study(path)
    third_party_csv(tmp_path / "vendor.csv")
    path = study_yaml(tmp_path, tiny, "{data: vendor.csv, name: vendor, label_colum: intent}")
    with pytest.raises(RoseError, match=r"study.yaml:8: .*unknown: label_colum"):
        load_study(path)
