"""Identities by content (rose.content): a file's digest is its bytes', a folder's its files' paths and bytes."""

from __future__ import annotations

import hashlib
import os
import shutil

import pytest

from rose.content import file_digest, files_digest, sha256_hex


def test_a_file_edited_in_place_gets_a_new_digest(tmp_path):
    path = tmp_path / "descriptions.csv"
    path.write_text("label,description\ntravel,Trips.\n")
    first = file_digest(path)
    assert first.startswith("sha256:") and file_digest(path) == first
    path.write_text("label,description\ntravel,Journeys.\n")
    second = file_digest(path)
    assert second != first
    (tmp_path / "new.csv").write_text("label,description\ntravel,Trips.\n")
    os.replace(tmp_path / "new.csv", path)  # replaced by another file (a new inode) with the first bytes
    assert file_digest(path) == first


def test_the_same_relative_path_in_two_folders_is_two_digests_unless_the_bytes_agree(tmp_path):
    for checkout, text in (("a", "one\n"), ("b", "two\n"), ("c", "one\n")):
        (tmp_path / checkout / "data").mkdir(parents=True)
        (tmp_path / checkout / "data" / "topic-en.csv").write_text(text)
    a, b, c = (file_digest(tmp_path / x / "data" / "topic-en.csv") for x in "abc")
    assert a != b and a == c
    folders = [file_digest(tmp_path / x / "data") for x in "abc"]
    assert folders[0] != folders[1] and folders[0] == folders[2]  # a folder is its files, not where it lives


def test_a_folder_digest_covers_names_and_bytes_and_skips_hidden_files(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"\0" * 64)
    before = file_digest(folder)
    (folder / ".cache").mkdir()
    (folder / ".cache" / "x").write_text("local state")
    assert file_digest(folder) == before
    shutil.move(folder / "config.json", folder / "config2.json")
    assert file_digest(folder) != before
    weights = files_digest(folder, [folder / "model.safetensors"])
    (folder / "config2.json").write_text('{"changed": true}')
    assert files_digest(folder, [folder / "model.safetensors"]) == weights  # only the files it covers count
    assert sha256_hex(folder / "model.safetensors") == sha256_hex(folder / ".." / "model" / "model.safetensors")


def test_a_missing_file_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        file_digest(tmp_path / "nope.csv")


def _digest(tmp_path, folder, **overrides):
    from rose.generate.run import config_digest
    from rose.generate.strategies import get_strategy
    from tests.fakes import generate_config

    config = generate_config(tmp_path / folder, **overrides)
    return config_digest(config, get_strategy(config.strategy))


def test_a_generate_run_names_its_files_by_content(tmp_path):
    """Descriptions, a strategy YAML and the demonstration source enter a generate run's digest by their bytes:
    the same relative path in two checkouts with different bytes is two digests, with the same bytes one; a file
    edited in place is a new digest."""
    from rose.tasks import get_task

    rows = "".join(f'{label},"About {label}."\n' for label in get_task("topic").labels)
    for checkout, extra in (("a", ""), ("b", "x"), ("c", "")):
        (tmp_path / checkout).mkdir()
        (tmp_path / checkout / "descriptions.csv").write_text("label,description\n" + rows.replace(".", "." + extra))
        (tmp_path / checkout / "mine.yaml").write_text("name: mine\nsteps:\n  - generate: {}\n")
    digests = {c: _digest(tmp_path, c, descriptions=str(tmp_path / c / "descriptions.csv")) for c in "abc"}
    assert digests["a"] != digests["b"] and digests["a"] == digests["c"]
    (tmp_path / "a" / "descriptions.csv").write_text("label,description\n" + rows.replace("About", "On"))
    assert _digest(tmp_path, "a", descriptions=str(tmp_path / "a" / "descriptions.csv")) != digests["a"]
    yaml = {c: _digest(tmp_path, c, strategy=str(tmp_path / c / "mine.yaml")) for c in "ab"}
    assert yaml["a"] == yaml["b"]  # the same steps in two checkouts
    (tmp_path / "b" / "mine.yaml").write_text("name: mine\nsteps:\n  - generate: {}\n  - revise: {}\n")
    assert _digest(tmp_path, "b", strategy=str(tmp_path / "b" / "mine.yaml")) != yaml["a"]


def test_a_demonstration_source_is_its_splits_content(tmp_path):
    import shutil

    from tests.fakes import LANGUAGE, SOURCE

    copies, split = {}, None
    for name in ("one", "two"):
        for code in dict.fromkeys((LANGUAGE, "en")):
            found = next((p for p in (SOURCE / "sib200" / code / "train.jsonl", SOURCE / code / "train.jsonl")
                          if p.is_file()), None)  # fmt: skip
            if found is None:
                pytest.skip("no topic train split to copy")
            copy = tmp_path / name / found.relative_to(SOURCE)
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(found, copy)
            split = copy if code == LANGUAGE else split
        copies[name] = _digest(tmp_path, name, source=str(tmp_path / name))
    assert copies["one"] == copies["two"]  # two folders, the same data: one digest
    split.write_text("".join(split.read_text().splitlines(keepends=True)[:-1]))
    assert _digest(tmp_path, "two", source=str(tmp_path / "two")) != copies["one"]


def test_a_large_files_digest_is_kept_on_disk_and_read_again_once_the_file_changes(tmp_path, monkeypatch):
    """Model weights are digested once per machine, not once per process: the digest of a file of 16 MB or more
    is kept under $ROSE_HOME/digests, keyed by its path, size, times and inode. Rewriting the file, even to the
    same size with its modification time put back, changes its status-change time, so it is read again."""
    from rose import content

    monkeypatch.setenv("ROSE_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(content, "_CACHE", {})
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"a" * content._DISK_MIN)
    first = sha256_hex(path)
    entries = list((tmp_path / "home" / "digests").rglob("*"))
    entries = [e for e in entries if e.is_file()]
    assert len(entries) == 1 and entries[0].read_text() == first

    # a new process (an empty in-memory cache) takes the digest from disk without reading the file: shown by a
    # planted entry, which it returns as it is
    planted = "0" * 64
    entries[0].write_text(planted)
    monkeypatch.setattr(content, "_CACHE", {})
    assert sha256_hex(path) == planted

    # the same size, the modification time put back: read again, in this process and in the next one
    stat = path.stat()
    path.write_bytes(b"b" * content._DISK_MIN)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert (path.stat().st_size, path.stat().st_mtime_ns, path.stat().st_ino) == (stat.st_size, stat.st_mtime_ns,
                                                                                   stat.st_ino)  # fmt: skip
    rewritten = hashlib.sha256(b"b" * content._DISK_MIN).hexdigest()
    assert sha256_hex(path) == rewritten
    monkeypatch.setattr(content, "_CACHE", {})
    assert sha256_hex(path) == rewritten

    # a small file keeps no entry; an unwritable cache folder costs nothing but the read
    small = tmp_path / "small.csv"
    small.write_text("label\n")
    before = {e for e in (tmp_path / "home" / "digests").rglob("*") if e.is_file()}
    sha256_hex(small)
    assert {e for e in (tmp_path / "home" / "digests").rglob("*") if e.is_file()} == before
    monkeypatch.setenv("ROSE_HOME", str(small))  # a file where the folder should be
    monkeypatch.setattr(content, "_CACHE", {})
    assert sha256_hex(path) == rewritten
