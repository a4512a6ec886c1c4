"""Naming several stores on one command line: ``PATH``, ``NAME=PATH`` and
``$STEPFLOW_STORAGE_PATH`` with ``:``-separated roots."""

from __future__ import annotations

import pytest

from stepflow_top.store.locate import PathProblem, locate_stores


def test_each_store_is_named_after_its_root_unless_named_on_the_command_line(tmp_path):
    (tmp_path / "eu").mkdir()
    (tmp_path / "us").mkdir()
    stores = locate_stores([str(tmp_path / "eu"), f"west={tmp_path / 'us'}"])
    assert [(s.name, s.root) for s in stores] == [("eu", tmp_path / "eu"), ("west", tmp_path / "us")]
    assert stores[1].database == tmp_path / "us" / "database" / "stepflow.db"


def test_the_environment_variable_lists_roots_like_PATH(tmp_path, monkeypatch):
    monkeypatch.setenv("STEPFLOW_STORAGE_PATH", f"{tmp_path / 'a'}:{tmp_path / 'b'}")
    assert [s.label for s in locate_stores([])] == ["a", "b"]


def test_two_stores_with_one_name_are_refused_with_a_way_out(tmp_path):
    with pytest.raises(PathProblem, match="two stores are named 'storage': name them"):
        locate_stores([str(tmp_path / "one" / "storage"), str(tmp_path / "two" / "storage")])


def test_the_same_store_given_twice_is_refused(tmp_path):
    with pytest.raises(PathProblem, match="is given twice"):
        locate_stores([str(tmp_path / "s"), f"again={tmp_path / 's'}"])


def test_a_folder_whose_name_contains_an_equals_sign_is_a_path(tmp_path):
    odd = tmp_path / "a=b"
    odd.mkdir()
    assert locate_stores([str(odd)])[0].root == odd
