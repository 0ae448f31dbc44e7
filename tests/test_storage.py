"""tfcontrast.storage: what a save may replace, the atomic swap, the writer lock, safe reads."""

import os
import threading
import time

import pytest

from tfcontrast import storage


def is_ours(directory):
    return os.path.exists(os.path.join(directory, "OURS"))


def write_ours(tmp, text):
    with open(os.path.join(tmp, "OURS"), "w") as f:
        f.write(text)


def save(path, text="new", **kwargs):
    with storage.replace_directory(path, is_ours, what="thing", **kwargs) as tmp:
        write_ours(tmp, text)


def read(path):
    with open(os.path.join(path, "OURS")) as f:
        return f.read()


def test_new_path_then_replacing_our_own_output(tmp_path):
    target = tmp_path / "out"
    save(target, "first")
    save(target, "second")
    assert read(target) == "second"
    assert sorted(os.listdir(tmp_path)) == [".out.tfcontrast-lock", "out"]


def test_an_empty_directory_may_be_replaced(tmp_path):
    (tmp_path / "empty").mkdir()
    save(tmp_path / "empty")
    assert read(tmp_path / "empty") == "new"


@pytest.mark.parametrize("content", ["file", "subdir"])
def test_a_foreign_directory_is_refused_and_kept(tmp_path, content):
    target = tmp_path / "user"
    target.mkdir()
    if content == "file":
        (target / "precious.txt").write_text("x")
    else:
        (target / "sub").mkdir()
    with pytest.raises(storage.RefusedPathError, match="not a thing written by tfcontrast"):
        save(target)
    assert sorted(os.listdir(target)) == (["precious.txt"] if content == "file" else ["sub"])


def test_a_file_at_the_path_is_refused(tmp_path):
    (tmp_path / "f").write_text("data")
    with pytest.raises(storage.RefusedPathError, match="not a directory"):
        save(tmp_path / "f")
    assert (tmp_path / "f").read_text() == "data"


@pytest.mark.parametrize("path", ["", " ", ".", "..", "~", "/"])
def test_cwd_home_root_and_ancestors_are_refused(tmp_path, monkeypatch, path):
    work = tmp_path / "work"
    work.mkdir()
    (work / "mine.txt").write_text("x")
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    with pytest.raises(storage.RefusedPathError):
        save(path)
    assert (work / "mine.txt").read_text() == "x"


def test_the_absolute_cwd_is_refused_even_when_it_looks_like_ours(tmp_path, monkeypatch):
    (tmp_path / "OURS").write_text("old")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(storage.RefusedPathError, match="current, home or root"):
        save(str(tmp_path))


def test_a_symlink_is_followed_and_stays_a_link(tmp_path):
    real = tmp_path / "real"
    save(real, "old")
    link = tmp_path / "link"
    link.symlink_to(real)
    save(link, "new")
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert read(real) == "new"


def test_a_failing_write_leaves_the_old_directory_and_no_temporary(tmp_path):
    target = tmp_path / "out"
    save(target, "old")
    with pytest.raises(RuntimeError, match="boom"):
        with storage.replace_directory(target, is_ours) as tmp:
            write_ours(tmp, "half")
            raise RuntimeError("boom")
    assert read(target) == "old"
    assert sorted(os.listdir(tmp_path)) == [".out.tfcontrast-lock", "out"]


def test_stale_temporaries_are_removed_by_the_next_save(tmp_path):
    target = tmp_path / "out"
    save(target, "old")
    for stale in (".out.tfcontrast-tmp-123-abcd", ".out.tmp-xyz", ".out.previous"):
        (tmp_path / stale).mkdir()
        (tmp_path / stale / "big").write_bytes(b"0" * 1000)
    (tmp_path / ".other.tfcontrast-tmp-1-a").mkdir()  # another target's: kept
    save(target, "new")
    assert sorted(os.listdir(tmp_path)) == [".other.tfcontrast-tmp-1-a", ".out.tfcontrast-lock", "out"]


def test_clean_stale_if_idle_skips_while_a_writer_holds_the_lock(tmp_path):
    target = tmp_path / "out"
    save(target)
    stale = tmp_path / ".out.tfcontrast-tmp-9-dead"
    stale.mkdir()
    with storage._exclusive_lock(str(tmp_path / ".out.tfcontrast-lock"), 1.0, "out"):
        storage.clean_stale_if_idle(target)
        assert stale.exists()
    storage.clean_stale_if_idle(target)
    assert not stale.exists()


def test_concurrent_writers_are_serialised(tmp_path):
    target = tmp_path / "out"
    errors = []

    def writer(i):
        try:
            for _ in range(5):
                with storage.replace_directory(target, is_ours) as tmp:
                    write_ours(tmp, str(i))
                    time.sleep(0.002)
                    (open(os.path.join(tmp, "second"), "w")).write(str(i))
        except Exception as err:  # noqa: BLE001 - collected and asserted below
            errors.append(err)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert read(target) == (target / "second").read_text()  # both files from the same writer
    assert sorted(os.listdir(tmp_path)) == [".out.tfcontrast-lock", "out"]


def test_a_writer_that_cannot_get_the_lock_says_who_is_writing(tmp_path):
    target = tmp_path / "out"
    with storage._exclusive_lock(str(tmp_path / ".out.tfcontrast-lock"), 1.0, "out"):
        with pytest.raises(storage.ConcurrentWriteError, match="another process is writing"):
            save(target, lock_timeout=0.1)
    assert not target.exists()


def test_the_fallback_swap_without_renameat2(tmp_path, monkeypatch):
    monkeypatch.setattr(storage, "_EXCHANGE", None)
    target = tmp_path / "out"
    save(target, "old")
    save(target, "new")
    assert read(target) == "new"
    assert sorted(os.listdir(tmp_path)) == [".out.tfcontrast-lock", "out"]


def test_resolve_saved_directory_falls_back_to_previous(tmp_path):
    (tmp_path / ".out.previous").mkdir()
    with pytest.warns(RuntimeWarning, match="interrupted"):
        assert storage.resolve_saved_directory(tmp_path / "out", ValueError) == str(tmp_path / ".out.previous")
    with pytest.raises(KeyError, match="does not exist"):
        storage.resolve_saved_directory(tmp_path / "none", KeyError)


def test_read_regular_file_checks_kind_and_size_before_reading(tmp_path):
    f = tmp_path / "f"
    f.write_bytes(b"12345")
    assert storage.read_regular_file(str(f), expected_size=5) == b"12345"
    with pytest.raises(storage.UnsafeFileError, match="truncated"):
        storage.read_regular_file(str(f), expected_size=6)
    with pytest.raises(storage.UnsafeFileError, match="more than"):
        storage.read_regular_file(str(f), max_size=4)
    (tmp_path / "zero").symlink_to("/dev/zero")
    with pytest.raises(storage.UnsafeFileError, match="symbolic link"):
        storage.read_regular_file(str(tmp_path / "zero"), max_size=10)
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(storage.UnsafeFileError, match="not a regular file"):
        storage.read_regular_file(str(tmp_path / "fifo"))
    with pytest.raises(FileNotFoundError):
        storage.read_regular_file(str(tmp_path / "missing"))
