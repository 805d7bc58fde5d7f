"""curation.atomic_files: a file killed mid-write leaves only a `.partial` name, which the recovery sweep removes."""

import os
import time
from pathlib import Path

from curation.atomic_files import AtomicFile, bytes_write_atomic
from gestima.leases import partial_files_remove


def _write_and_die(target: Path, *, whole_bytes: bool) -> None:
    pid = os.fork()
    if pid == 0:  # a writer killed before its rename: never commits
        try:
            if whole_bytes:
                AtomicFile(target).write_pieces([b"half a line"])
            else:
                AtomicFile(target.with_suffix(".png")).write_pieces([b"\x89PNG"])
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


def test_a_killed_writer_leaves_no_final_name_and_its_partial_files_are_swept(tmp_path, settings):
    _write_and_die(tmp_path / "train.jsonl", whole_bytes=True)
    _write_and_die(tmp_path / "abc", whole_bytes=False)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert len(left) == 2 and all(name.startswith(".") and name.endswith(".partial") for name in left)
    assert not (tmp_path / "train.jsonl").exists()
    long_ago = time.time() - settings.JOB_LEASE_SECONDS - 60  # the sweep waits a lease (shared volumes)
    for path in tmp_path.iterdir():
        os.utime(path, (long_ago, long_ago))
    assert len(partial_files_remove(tmp_path)) == 2 and list(tmp_path.iterdir()) == []


def test_a_live_writer_keeps_its_partial_file_and_a_finished_one_appears_whole(tmp_path):
    live = AtomicFile(tmp_path / "train.jsonl")
    live.write_pieces([b'{"messages": []}', b"\n"])
    assert partial_files_remove(tmp_path) == []  # this process is alive: its file is work in progress
    live.finish()
    live.commit()
    bytes_write_atomic(tmp_path / "image.png", b"\x89PNG")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["image.png", "train.jsonl"]
    assert (tmp_path / "train.jsonl").read_bytes() == b'{"messages": []}\n'
