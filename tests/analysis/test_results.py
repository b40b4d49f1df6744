"""Result files: schema, atomic writes, unique names, clear errors."""
from __future__ import annotations

import pytest

import os

import threading

from resnet_perf.analysis.results import (SCHEMA_VERSION, load_results, newest_result_file, result_payload,
                                          save_rows, write_results)
from resnet_perf.files import write_text_atomic


def test_save_and_load_round_trip_without_overwriting(tmp_path):
    first = save_rows(tmp_path, "bench", [{"run_id": "a", "images_per_sec": 1.0}], {"tensorflow": "x"})
    second = save_rows(tmp_path, "bench", [{"run_id": "b"}], {"tensorflow": "x"})
    assert first != second and first.exists() and second.exists()
    loaded = load_results(first)
    assert loaded["schema_version"] == SCHEMA_VERSION and loaded["kind"] == "bench"
    assert loaded["rows"] == [{"run_id": "a", "images_per_sec": 1.0}]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([first.name, second.name])  # no temp left


def test_unwritable_results_dir_is_one_clear_error(tmp_path):
    blocker = tmp_path / "results"
    blocker.write_text("not a directory")
    with pytest.raises(ValueError, match=f"cannot write results to {blocker}"):
        save_rows(blocker, "bench", [], {})


@pytest.mark.parametrize("content, message", [
    ('{"schema": "resnet_perf/results", "rows": [', "not valid JSON"),
    ('{"name": "something else"}', "not a resnet_perf result file"),
    ('{"schema": "resnet_perf/results", "schema_version": 99, "rows": []}', "schema version 99"),
])
def test_bad_files_name_themselves(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message) as caught:
        load_results(path)
    assert str(path) in str(caught.value)


def test_missing_file(tmp_path):
    with pytest.raises(ValueError, match="cannot read"):
        load_results(tmp_path / "nope.json")


def test_newest_result_is_chosen_by_the_time_it_was_written_not_by_modification_time(tmp_path):
    """After a git clone, modification times follow checkout order, not age."""
    older = write_results(tmp_path / "bench-20261126T145438Z.json", result_payload("bench", [], {}))
    newer = write_results(tmp_path / "bench-20261127T090000Z.json", result_payload("bench", [], {}))
    same_second = write_results(tmp_path / "bench-20261127T090000Z-2.json", result_payload("bench", [], {}))
    os.utime(older, (2e9, 2e9))  # the oldest file was touched last, the others long ago
    os.utime(newer, (1e9, 1e9))
    os.utime(same_second, (1e9, 1e9))
    assert newest_result_file(tmp_path) == same_second
    same_second.unlink()
    assert newest_result_file(tmp_path) == newer


def test_a_name_without_a_time_is_ordered_by_its_created_time(tmp_path):
    named = write_results(tmp_path / "train-default-recipe.json", {**result_payload("train", [], {}),
                                                                   "created": "2026-11-28T09:00:00+00:00"})
    stamped = write_results(tmp_path / "train-x-20261127T000000Z.json", result_payload("train", [], {}))
    os.utime(named, (1e9, 1e9))
    os.utime(stamped, (2e9, 2e9))
    assert newest_result_file(tmp_path) == named


def test_result_files_follow_the_umask_like_any_other_file(tmp_path):
    previous = os.umask(0o022)
    try:
        path = save_rows(tmp_path, "bench", [], {})
    finally:
        os.umask(previous)
    assert path.stat().st_mode & 0o777 == 0o644


def test_a_partial_file_left_by_a_killed_writer_is_never_read_and_removed_later(tmp_path):
    stale = tmp_path / ".bench-20261126T145438Z.json.k3j4h5.partial"
    stale.write_text("")  # what SIGKILL during a write leaves
    fresh = tmp_path / ".bench-20261128T000000Z.json.abcdef.partial"
    fresh.write_text("{")  # another writer, busy right now
    os.utime(stale, (1e9, 1e9))
    first = save_rows(tmp_path, "bench", [], {})
    assert newest_result_file(tmp_path) == first  # partial files are no results
    assert not stale.exists() and fresh.exists()


def test_processes_saving_into_one_folder_at_once_never_overwrite_each_other(tmp_path):
    """Names are taken by linking the complete file under them, which fails when taken: a check, then a
    rename, once lost 59 of 600 files to another process's rename in between."""
    saved: list = []

    def save(writer: int) -> None:
        for number in range(40):
            saved.append(save_rows(tmp_path, "bench", [{"run_id": f"{writer}-{number}"}], {}))
    writers = [threading.Thread(target=save, args=(writer,)) for writer in range(6)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    assert len(set(saved)) == 240 and len(list(tmp_path.glob("*.json"))) == 240
    found = {load_results(path)["rows"][0]["run_id"] for path in saved}
    assert len(found) == 240 and not list(tmp_path.glob(".*"))  # every row, and no partial file left


def test_a_write_that_fails_part_way_leaves_the_earlier_file_whole(tmp_path):
    page = tmp_path / "index.html"
    write_text_atomic(page, "the earlier page")
    with pytest.raises(UnicodeEncodeError):  # fails after the first part is written, as a full disk would
        write_text_atomic(page, "x" * 100_000 + "\ud800")
    assert page.read_text() == "the earlier page" and [path.name for path in tmp_path.iterdir()] == ["index.html"]
