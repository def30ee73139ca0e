"""Your own task in your own language: a task file (3 labels in Amharic script), Amharic (a language outside the
study's eleven and outside lingua), run by hand and through ``rose pipeline`` (fake generators, tiny encoder).

Also: a third-party file imported into the custom task, a label description edit that changes the generate digest,
two tasks with one name and different contents refused in one score, and language ID reported as not available
(nothing dropped) for a language lingua lacks.
"""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest

from rose import tasks, tracking
from rose.errors import RoseError
from rose.naming import label_key
from tests.fakes import rose, run_id, use_tracking_db
from tests.tiny import make_tiny_classifier

LABELS = {
    "ጤና": ["ሐኪሙ ታካሚውን በሆስፒታል መረመረ", "አዲስ መድኃኒት ለሕሙማን ተሰጠ", "የጤና ጣቢያው ክትባት ጀመረ", "ነርሷ ሕፃኑን አከመች"],
    "ስፖርት": ["ቡድኑ ጨዋታውን በሁለት ግብ አሸነፈ", "አትሌቱ የማራቶን ውድድር ሮጠ", "አሰልጣኙ አዲስ ተጫዋች መረጠ", "ስታዲየሙ በደጋፊዎች ተሞላ"],
    "ፖለቲካ": ["ፓርላማው አዲስ ሕግ አጸደቀ", "ምርጫው በሰላም ተካሄደ", "ሚኒስትሩ ስለ በጀቱ ተናገሩ", "ፓርቲው አዲስ መሪ መረጠ"],
}
DISPLAY = {"ጤና": "health", "ስፖርት": "sports", "ፖለቲካ": "politics"}


def task_text(name: str = "amharic_news", health: str = "health, illness, doctors and medicine") -> str:
    return textwrap.dedent(f"""\
        name: {name}
        description: short Amharic news sentences, classified by section
        example_noun: sentence
        labels:
          - name: ጤና
            display: health
            description: {health}
          - name: ስፖርት
            display: sports
            description: sport, matches, athletes and teams
          - name: ፖለቲካ
            display: politics
            description: government, parliament, elections and parties
        human_data:
          layout: "am_news/{{language}}/{{split}}.jsonl"
        """)


def write_data(root: Path) -> None:
    """Human train and test splits of the task (a small file the test writes)."""
    for split, numbers in (("train", range(1, 7)), ("test", range(7, 10))):
        folder = root / "am_news" / "am"
        folder.mkdir(parents=True, exist_ok=True)
        rows = [{"text": f"{s} {n}", "label": label} for label, texts in LABELS.items() for s in texts for n in numbers]
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")


@pytest.fixture
def own(tmp_path, monkeypatch):
    use_tracking_db(tmp_path, monkeypatch)
    write_data(tmp_path / "data")
    path = tmp_path / "amharic_news.yaml"
    path.write_text(task_text(), encoding="utf-8")
    return tmp_path, path


NO_TOOLS = ("--reference-lm", "", "--embedding-model", "", "--tokenizer", "", "--bootstrap", 50)


def test_own_task_in_amharic_by_hand(own, capsys):
    """generate (language filter on: lingua lacks Amharic, so nothing is dropped), train, evaluate, score and the
    champion, with the task given as a file everywhere."""
    import mlflow

    folder, task_file = own
    task = tasks.get_task(str(task_file))
    tiny = make_tiny_classifier(folder / "tiny")
    generated = {}
    for generator, strategy in (("fake-a", "target_demos"), ("fake-b", "zero_shot")):
        printed = rose(capsys, "generate", "--task", task_file, "--language", "am", "--generator", generator,
                       "--backend", "fake", "--strategy", strategy, "--per-label", 3, "--source", folder / "data",
                       "--cache-dir", folder / "cache", "--language-filter", "true",
                       "--min-chars", 1, "--max-chars", 400)  # fake answers are longer than the human sentences  # fmt: skip
        generated[f"{generator}__{strategy}"] = run_id(printed)
    client = mlflow.MlflowClient()
    for rid in generated.values():
        run = client.get_run(rid)
        assert run.data.tags["rose.task"] == "amharic_news" and run.data.tags["rose.task_digest"] == task.digest
        assert tasks.from_run(run).to_dict() == task.to_dict()  # task.yaml rebuilds the task
        m = run.data.metrics
        assert m["language_dropped"] == 0 and "target_language_share" not in m  # language ID: not available
        assert {m[f"kept/{label_key(label)}"] for label in task.labels} == {3.0}
    prompts = (folder / "cache").parent  # the prompt says the display name, the plural and the language's name
    sent = client.download_artifacts(generated["fake-b__zero_shot"], "dataset/prompts.jsonl", str(prompts))
    first = json.loads(Path(sent).read_text(encoding="utf-8").splitlines()[0])
    text = json.dumps(first, ensure_ascii=False)
    assert "Amharic sentences of the category" in text and '\\"health\\"' in text and "sentences" in text
    trained = {}
    for candidate, data in generated.items():
        printed = rose(capsys, "train", "--task", task_file, "--language", "am", "--data", data, "--classifier", tiny,
                       "--seeds", 1, "--max-epochs", 1, "--eval", f"human:{folder / 'data'}")  # fmt: skip
        trained[candidate] = re.search(r"parent run ([0-9a-f]{32})", printed).group(1)
    printed = rose(capsys, "score", "--task", task_file, "--language", "am", *NO_TOOLS)
    score = tracking.search_runs("rose", stage="score")[0]
    assert score.data.tags["rose.task"] == "amharic_news" and score.data.tags["rose.task_digest"] == task.digest
    cells = tracking.search_runs("rose", stage="evaluate")
    assert len(cells) == 4 and {c.data.tags["rose.task_digest"] for c in cells} == {task.digest}
    best = score.data.tags["rose.champion"]
    assert best in generated and f"champion amharic_news/am: {best}" in printed
    version = client.get_model_version_by_alias("rose-amharic_news-am", "champion")
    assert version.tags["rose.candidate"] == best
    for rid in [*trained.values(), score.info.run_id, *(c.info.run_id for c in cells)]:
        assert "task.yaml" in {a.path for a in client.list_artifacts(rid)}, rid


def test_own_task_through_the_pipeline(own, capsys):
    folder, task_file = own
    tiny = make_tiny_classifier(folder / "tiny")
    study = folder / "study.yaml"
    study.write_text(textwrap.dedent(f"""\
        experiment: own
        tasks: [{task_file.name}]
        languages: [am]
        source: {folder / "data"}
        candidates:
          - {{generator: fake-a, strategy: zero_shot}}
          - {{generator: fake-b, strategy: target_demos}}
        generate: {{backend: fake, per_label: 4, examples_per_request: 4, cache_dir: {folder / "cache"},
                   min_chars: 1, max_chars: 400}}
        train: {{classifier: {tiny}, seeds: [1], per_label: 4, max_epochs: 1}}
        score: {{reference_lm: "", embedding_model: "", tokenizer: "", bootstrap: 50}}
        """), encoding="utf-8")  # fmt: skip
    printed = rose(capsys, "pipeline", "--config", study)
    task = tasks.get_task(str(task_file))
    runs = tracking.search_runs("own")
    stages = sorted({r.data.tags["rose.stage"] for r in runs})
    assert stages == ["evaluate", "generate", "pipeline", "score", "train"]
    assert {r.data.tags.get("rose.task") for r in runs} == {"amharic_news"}
    assert {r.data.tags.get("rose.task_digest") for r in runs if r.data.tags["rose.stage"] != "pipeline"} == {
        task.digest
    }
    assert "RoSE leaderboard: task amharic_news, language am (champion: fake-" in printed


def test_a_third_party_file_imports_into_the_custom_task(own, capsys):
    folder, task_file = own
    text = task_file.read_text(encoding="utf-8") + 'label_map: {"0": ጤና, "1": ስፖርት, "2": ፖለቲካ}\n'
    task_file.write_text(text, encoding="utf-8")
    made = folder / "their.csv"  # their columns and their label ids: the task file maps the ids
    rows = ["sentence,class,origin"] + [f"{s} ሀ{i},{list(LABELS).index(lab)},x" for lab, texts in LABELS.items()
                                        for s in texts for i in range(2)]  # fmt: skip
    made.write_text("\n".join(rows) + "\n", encoding="utf-8")
    printed = rose(capsys, "data", "import", "--task", task_file, "--language", "am", "--data", made,
                   "--text-column", "sentence", "--label-column", "class", "--candidate", "theirs")  # fmt: skip
    run = tracking.search_runs("rose", stage="generate")[0]
    assert (
        run.info.run_id == run_id(printed)
        and run.data.tags["rose.task_digest"] == tasks.get_task(str(task_file)).digest
    )
    assert {run.data.metrics[f"kept/{label_key(lab)}"] for lab in LABELS} == {8.0}


def test_a_description_edit_changes_the_generate_digest(own):
    from rose.generate.run import config_digest
    from rose.generate.strategies import get_strategy
    from tests.fakes import generate_config

    folder, task_file = own
    edited = folder / "edited.yaml"
    edited.write_text(task_text(health="hospitals and doctors"), encoding="utf-8")
    same = folder / "copy" / "amharic_news.yaml"
    same.parent.mkdir()
    same.write_text(task_file.read_text(encoding="utf-8"), encoding="utf-8")
    strategy = get_strategy("target_demos_revision")

    def digest(path: Path, **more) -> str:
        return config_digest(generate_config(folder, task=str(path), language="am", source=str(folder / "data"),
                                             **more), strategy)  # fmt: skip

    assert digest(task_file) == digest(same)  # the same content elsewhere: the same run
    assert digest(task_file) != digest(edited)  # an edited description: generated again, never reused
    assert digest(task_file) != digest(task_file, language_name="Amharic (Ethiopia)")  # the name reaches prompts


def test_two_tasks_with_one_name_are_never_mixed_in_a_score(own, capsys):
    folder, task_file = own
    other = folder / "other.yaml"
    other.write_text(task_text().replace("  - name: ፖለቲካ\n    display: politics", "  - name: ባህል\n    display: culture"),
                     encoding="utf-8")  # fmt: skip
    (folder / "data" / "am_news" / "am" / "train.jsonl").write_text(
        (folder / "data" / "am_news" / "am" / "train.jsonl").read_text("utf-8").replace("ፖለቲካ", "ባህል")
        + (folder / "data" / "am_news" / "am" / "train.jsonl").read_text("utf-8"), "utf-8")  # fmt: skip
    for path, generator in ((task_file, "fake-a"), (other, "fake-b")):
        rose(capsys, "generate", "--task", path, "--language", "am", "--generator", generator, "--backend", "fake",
             "--strategy", "zero_shot", "--per-label", 2, "--source", folder / "data", "--cache-dir", folder / "c",
             "--min-chars", 1, "--max-chars", 400)  # fmt: skip
    from rose.score.config import ScoreConfig
    from rose.score.run import score

    with pytest.raises(RoseError, match=r"two different tasks named 'amharic_news' .*pass the task file") as exc:
        score(ScoreConfig(task=["amharic_news"], language=["am"], reference_lm="", embedding_model="", tokenizer=""))
    assert "\n" not in str(exc.value)
