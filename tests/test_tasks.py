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


def test_task_init_drafts_a_valid_task_from_a_labelled_file(tmp_path, monkeypatch, capsys):
    from rose.cli import main

    data = tmp_path / "tickets.csv"
    data.write_text("body,cat\nthe bus was late,2\nmy tax form,0\nwhere is my refund,0\nbroken street light,1\n")
    monkeypatch.chdir(tmp_path)
    assert main(["task", "init", "--data", str(data), "--label-column", "cat"]) == 2
    assert "no column 'text' (columns: body, cat): pass --text-column" in capsys.readouterr().err
    assert main(["task", "init", "--data", str(data), "--label-column", "cat", "--text-column", "body"]) == 2
    assert "holds integer ids" in capsys.readouterr().err
    assert main(["task", "init", "--data", str(data), "--label-column", "cat", "--text-column", "body",
                 "--label-map", "0=taxes,1=streets,2=transport", "--noun", "request", "--source", str(tmp_path)]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "wrote tickets.yaml: task tickets, 3 labels, 4 examples" in out and "taxes: 2" in out
    task = tasks.get_task(str(tmp_path / "tickets.yaml"))
    assert task.labels == ("taxes", "streets", "transport") and task.plural == "requests"
    assert task.label_map == {"0": "taxes", "1": "streets", "2": "transport"}
    assert task.human_path(tmp_path, "en", "train") == tmp_path / "tickets.csv"
    assert "# 2 examples in tickets.csv" in (tmp_path / "tickets.yaml").read_text()
    assert main(["task", "init", "--data", str(data), "--label-column", "cat", "--text-column", "body",
                 "--label-map", "0=taxes,1=streets,2=transport"]) == 2  # never overwrites unasked  # fmt: skip
    assert "exists: pass --force" in capsys.readouterr().err
    assert main(["task", "check", "tickets.yaml", "--source", str(tmp_path)]) == 0
    assert "task tickets (digest " in capsys.readouterr().out
    (tmp_path / "bad.yaml").write_text("name: bad\ndescription: d\nlabels: [a, a]\n")
    assert main(["task", "check", "bad.yaml"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("bad.yaml:3: label 'a' appears twice") and "\n" not in err
