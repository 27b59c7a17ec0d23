"""photofix._files: the one atomic writer, its temp names and its clean-up."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from photofix import _files


def test_temp_names_are_the_ones_batch_cleans_up(tmp_path: Path) -> None:
    target = tmp_path / "photo.png"
    tmp, fd = _files.create_temp(target)
    os.close(fd)
    # the one pattern batch.remove_stale_temps cleans up by
    assert _files.temp_target(tmp.name) == "photo.png"
    assert _files.temp_target("photo.png") is None and _files.temp_target(".photo.png.part") is None


@pytest.mark.parametrize("error", [ValueError("encoder refused"), KeyboardInterrupt()])
def test_a_failed_write_leaves_the_old_file_and_no_temp(tmp_path: Path, error: BaseException) -> None:
    target = tmp_path / "notes.json"
    target.write_text("old")

    def write(fp) -> None:
        fp.write(b"half")
        raise error

    with pytest.raises(type(error)):
        _files.write_atomic(target, write)
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["notes.json"]


def test_write_copy_and_link_replace_whole(tmp_path: Path) -> None:
    text = tmp_path / "a.json"
    _files.write_text_atomic(text, "{}\n")
    copy = tmp_path / "sub" / "b.json"
    _files.copy_atomic(text, copy)
    link = tmp_path / "sub" / "c.json"
    _files.symlink_atomic(link, "b.json")
    assert copy.read_text() == "{}\n" and link.read_text() == "{}\n" and os.readlink(link) == "b.json"
    assert _files.sha256_file(copy) == "ca3d163bab055381827226140568f3bef7eaac187cebd76878e0b63e9e442356"
    assert sorted(p.name for p in copy.parent.iterdir()) == ["b.json", "c.json"]
