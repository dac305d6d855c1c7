"""Checkpoint files on disk: what rotation may delete, stale temporaries of interrupted saves,
saving into a folder that does not exist."""
import os
import socket
import subprocess
import sys

import pytest

import gpunet as gn
from gpunet.train import ModelCheckpoint, Trainer
from gpunet.train import atomic
from gpunet.train import checkpoint as ck


def trainer(mlp, cbs=()):
    model = mlp()
    return Trainer(model, gn.losses.CrossEntropy(), gn.optim.Adam(model, lr=1e-2), callbacks=list(cbs))


def files(folder):
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


# ---------------------------------------------------------------------- rotation
def test_a_resumed_run_never_rotates_the_old_runs_files(mlp, data, tmp_path):
    train, val = data
    old, new = tmp_path / "old", tmp_path / "new"
    trainer(mlp, [ModelCheckpoint(str(old / "e{epoch:03d}.gnck"), keep=2)]).fit(
        train, val=val, epochs=3, batch_size=60, verbose=0)
    assert files(old) == ["e002.gnck", "e003.gnck"]
    before = {f: (old / f).read_bytes() for f in files(old)}

    t = trainer(mlp, [ModelCheckpoint(str(new / "e{epoch:03d}.gnck"), keep=2)])
    t.fit(train, val=val, epochs=6, batch_size=60, verbose=0, resume=old / "e003.gnck")
    assert files(new) == ["e005.gnck", "e006.gnck"]
    assert {f: (old / f).read_bytes() for f in files(old)} == before  # untouched, byte for byte


def test_rotation_in_the_same_folder_keeps_the_checkpoint_it_resumed_from(mlp, data, tmp_path):
    train, val = data
    pattern = str(tmp_path / "e{epoch:03d}.gnck")
    trainer(mlp, [ModelCheckpoint(pattern, keep=1)]).fit(train, val=val, epochs=2, batch_size=60, verbose=0)
    assert files(tmp_path) == ["e002.gnck"]
    t = trainer(mlp, [ModelCheckpoint(pattern, keep=1)])
    t.fit(train, val=val, epochs=5, batch_size=60, verbose=0, resume=tmp_path / "e002.gnck")
    # this run wrote e003..e005 and keeps its newest; e002 is the earlier run's (and the resume's)
    assert files(tmp_path) == ["e002.gnck", "e005.gnck"]
    assert ck.load(tmp_path / "e002.gnck")["epoch"] == 2


def test_a_single_file_pattern_resumed_in_place(mlp, data, tmp_path):
    train, val = data
    path = tmp_path / "last.gnck"
    trainer(mlp, [ModelCheckpoint(str(path), keep=1)]).fit(train, val=val, epochs=1, batch_size=60, verbose=0)
    trainer(mlp, [ModelCheckpoint(str(path), keep=1)]).fit(train, val=val, epochs=3, batch_size=60, verbose=0,
                                                            resume=path)
    assert files(tmp_path) == ["last.gnck"] and ck.load(path)["epoch"] == 3


def test_rotation_leaves_the_new_file_complete_before_deleting(mlp, data, tmp_path, monkeypatch):
    """A kill between the save and the removal leaves one file more, never one fewer."""
    train, val = data
    pattern = str(tmp_path / "e{epoch}.gnck")
    seen = []
    real_remove = os.remove

    def spy(path):
        seen.append((os.path.basename(path), files(tmp_path)))
        real_remove(path)

    monkeypatch.setattr(os, "remove", spy)
    trainer(mlp, [ModelCheckpoint(pattern, keep=2)]).fit(train, val=val, epochs=4, batch_size=60, verbose=0)
    assert seen == [("e1.gnck", ["e1.gnck", "e2.gnck", "e3.gnck"]),
                    ("e2.gnck", ["e2.gnck", "e3.gnck", "e4.gnck"])]


def test_the_rotation_list_is_not_part_of_the_checkpoint(mlp, data, tmp_path):
    train, val = data
    pattern = str(tmp_path / "e{epoch}.gnck")
    trainer(mlp, [ModelCheckpoint(pattern, keep=3)]).fit(train, val=val, epochs=1, batch_size=60, verbose=0)
    state = ck.load(tmp_path / "e1.gnck")
    cb_state = [c["state"] for c in state["callbacks"] if c["type"] == "ModelCheckpoint"][0]
    assert set(cb_state) == {"best"}  # no file list travels to another run


# ---------------------------------------------------------------------- temporaries
def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def _temporary(folder, target, host, pid, size=1000):
    path = folder / f".{target}.gntmp.{host}.{pid}.abc123_x.tmp"
    path.write_bytes(b"\0" * size)
    return path


def test_a_temporary_names_its_host_and_pid(tmp_path, monkeypatch):
    names = []
    real_replace = os.replace

    def spy(src, dst):
        names.append(os.path.basename(src))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    ck.save(tmp_path / "a.gnck", {"v": 1})
    host = atomic._host()
    assert len(names) == 1 and names[0].startswith(f".a.gnck.gntmp.{host}.{os.getpid()}.")
    assert names[0].endswith(".tmp") and atomic._PATTERN.match(names[0])


def test_only_this_hosts_temporaries_of_dead_writers_are_removed(tmp_path):
    host, dead, live = atomic._host(), _dead_pid(), os.getpid()
    stale = [_temporary(tmp_path, "e1.gnck", host, dead, 3000), _temporary(tmp_path, "e2.gnck", host, dead, 500)]
    keep = [
        _temporary(tmp_path, "e3.gnck", host, live),               # a live writer (this process)
        _temporary(tmp_path, "e4.gnck", "another-node", dead),     # another machine's: never touched
        tmp_path / ".e5.gnck.k2j3h4.tmp",                           # the old naming: not provably ours
        tmp_path / "notes.tmp",                                     # the user's
        tmp_path / "e1.gnck",                                       # a checkpoint
    ]
    for p in keep[2:]:
        p.write_bytes(b"x")
    assert atomic.remove_stale_temporaries(tmp_path) == (2, 3500)
    assert not any(p.exists() for p in stale) and all(p.exists() for p in keep)
    assert atomic.remove_stale_temporaries(tmp_path) == (0, 0)
    assert atomic.remove_stale_temporaries(tmp_path / "missing") == (0, 0)


def test_a_run_starts_by_removing_stale_temporaries_and_says_how_many(mlp, data, tmp_path, capsys):
    train, val = data
    host, dead = atomic._host(), _dead_pid()
    for i in range(3):
        _temporary(tmp_path, f"e{i}.gnck", host, dead, 2_000_000)
    other = _temporary(tmp_path, "e9.gnck", "another-node", dead)
    trainer(mlp, [ModelCheckpoint(str(tmp_path / "e{epoch}.gnck"))]).fit(train, val=val, epochs=1,
                                                                          batch_size=60, verbose=0)
    err = capsys.readouterr().err
    assert "removed 3 stale temporary files (6.0 MB)" in err and str(tmp_path) in err
    assert files(tmp_path) == sorted(["e1.gnck", other.name])


def test_a_folder_with_fields_is_cleaned_at_its_first_save(mlp, data, tmp_path, capsys):
    train, val = data
    run = tmp_path / "run1"
    run.mkdir()
    _temporary(run, "model.gnck", atomic._host(), _dead_pid())
    trainer(mlp, [ModelCheckpoint(str(tmp_path / "run{epoch}" / "model.gnck"))]).fit(
        train, val=val, epochs=1, batch_size=60, verbose=0)
    assert "removed 1 stale temporary file " in capsys.readouterr().err
    assert files(run) == ["model.gnck"]


# ---------------------------------------------------------------------- folders
def test_saving_into_a_missing_folder_creates_it(mlp, tmp_path):
    t = trainer(mlp)
    path = tmp_path / "a" / "b" / "c.gnck"
    t.save_checkpoint(path)
    assert ck.load(path)["epoch"] == 0 and files(path.parent) == ["c.gnck"]


def test_a_file_where_the_folder_should_be_is_named_in_the_error(tmp_path):
    (tmp_path / "f").write_text("a file")
    with pytest.raises(OSError, match=r"folder .*f/sub|'.*f'") as info:
        ck.save(tmp_path / "f" / "sub" / "c.gnck", {"v": 1})
    assert ".tmp" not in str(info.value)


def test_hostnames_are_sanitised_in_temporary_names(monkeypatch):
    monkeypatch.setattr(socket, "gethostname", lambda: "node 7.cluster/a")
    assert atomic._host() == "node-7-cluster-a"
