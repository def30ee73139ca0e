"""Identities by content (rose.content): a file's digest is its bytes', a folder's its files' paths and bytes."""

from __future__ import annotations

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
