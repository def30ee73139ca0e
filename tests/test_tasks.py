"""Tasks as data (task files), any language, label keys: the identities of docs/CONTRACTS.md rules 2, 3 and 6."""

from __future__ import annotations

import pytest

from rose import naming, tasks, tracking
from rose.errors import RoseError
from rose.languages import get_language

AMHARIC_TASK = """\
name: amharic_news
description: short Amharic news sentences, classified by section
example_noun: sentence
labels:
  - name: ጤና
    display: health
    description: health, illness and medicine
  - name: ስፖርት
    display: sports
  - name: ፖለቲካ
human_data:
  layout: "am_news/{language}/{split}.jsonl"
"""


def write(tmp_path, text: str, name: str = "task.yaml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_task_file_loads_like_a_builtin(tmp_path):
    task = tasks.get_task(str(write(tmp_path, AMHARIC_TASK)))
    assert task.name == "amharic_news" and task.labels == ("ጤና", "ስፖርት", "ፖለቲካ")
    assert task.plural == "sentences" and task.display("ጤና") == "health" and task.display("ፖለቲካ") == "ፖለቲካ"
    assert task.description_of("ስፖርት") == "" and task.description_of("ጤና").startswith("health")
    assert task.human_path("/data", "am", "test").as_posix() == "/data/am_news/am/test.jsonl"
    again = tasks.from_dict(__import__("yaml").safe_load(task.to_yaml()))
    assert again.digest == task.digest  # task.yaml rebuilds the same task
    for name in tasks.BUILTIN:
        builtin = tasks.get_task(name)
        assert tasks.from_dict(__import__("yaml").safe_load(builtin.to_yaml())).digest == builtin.digest


def test_the_digest_covers_content_not_the_path(tmp_path):
    a = tasks.get_task(str(write(tmp_path, AMHARIC_TASK, "a.yaml")))
    b = tasks.get_task(str(write(tmp_path, AMHARIC_TASK, "b.yaml")))
    edited = tasks.get_task(str(write(tmp_path, AMHARIC_TASK.replace("health, illness", "health, doctors"), "c.yaml")))
    assert a.digest == b.digest != edited.digest
    tags = tracking.tags("generate", a, "am")
    assert tags["rose.task"] == "amharic_news" and tags["rose.task_digest"] == a.digest


@pytest.mark.parametrize(
    "text, message",
    [
        (AMHARIC_TASK + "colour: red\n", r"task.yaml:13: unknown key 'colour'"),
        (AMHARIC_TASK.replace("  - name: ፖለቲካ\n", "  - name: ጤና\n"), r"task.yaml:\d+: label 'ጤና' appears twice"),
        (AMHARIC_TASK + "label_map: {0: ጤና, 1: cooking}\n", r"label_map gives 'cooking', not a label of the task"),
        (AMHARIC_TASK.replace("{split}", "{part}"), r"human_data.layout needs a \{split\} placeholder"),
        ("name: x\ndescription: y\nlabels: [only]\n", r"task.yaml:3: a classification task needs at least two"),
        ("name: x y\ndescription: d\nlabels: [a, b]\n", r"task.yaml:1: name 'x y': use letters"),
        ("labels: [a, b]\n", r"missing 'name'"),
        ("name: x\ndescription: d\nlabels: [a, b]\nhuman_data: {files: {training: a.csv}}\n", r"unknown split"),
    ],
)
def test_a_bad_task_file_is_a_one_line_error_with_its_line(tmp_path, text, message):
    with pytest.raises(RoseError, match=message) as exc:
        tasks.get_task(str(write(tmp_path, text)))
    assert "\n" not in str(exc.value)


def test_unknown_task_and_missing_file_are_one_line():
    with pytest.raises(RoseError, match="unknown task 'complaints'.*task file"):
        tasks.get_task("complaints")
    with pytest.raises(RoseError, match="no task file at no/such.yaml"):
        tasks.get_task("no/such.yaml")


def test_label_keys_are_unique_in_any_script():
    labels = ["ጤና", "ስፖርት", "ፖለቲካ", "สุขภาพ", "กีฬา", "การเมือง", "ఆరోగ్యం", "క్రీడలు", "రాజకీయాలు",
              "science/technology", "science-technology", "Travel", "travel"]  # fmt: skip
    keys = [naming.label_key(label) for label in labels]
    assert len(set(keys)) == len(keys)
    assert naming.label_key("travel") == "travel" and naming.label_key("science-technology") == "science-technology"
    assert all(k == naming.slug(k) for k in keys)  # safe in a metric key
    assert naming.metric_key("kept", label="ጤና") == f"kept/{naming.label_key('ጤና')}"


def test_any_iso_code_is_a_language():
    assert get_language("tir").to_dict() == {"code": "ti", "name": "Tigrinya", "script": "Ethi"}
    assert get_language("am").lingua == "" and get_language("cy").lingua == "WELSH"
    assert get_language("qu", "Runa Simi").name == "Runa Simi"
    with pytest.raises(RoseError, match="unknown language 'qqq'.*--language-name"):
        get_language("qqq")
