"""Users' own annotation tracks: file formats, clear errors, and the CLI that attaches them."""
from __future__ import annotations

import io

import numpy as np
import pytest

from backend.cli import main
from backend.tasks.user_tracks import TrackFileError, parse_track_file


def test_formats_npy_lines_and_csv_with_header():
    buf = io.BytesIO()
    np.save(buf, np.arange(4, dtype=np.int64))
    assert parse_track_file(buf.getvalue(), "depth.npy")[0] == "depth"
    np.testing.assert_array_equal(parse_track_file(buf.getvalue(), "depth.npy")[1], [0, 1, 2, 3])
    name, values = parse_track_file(b"# my values\n1\n2.5\n\n-3\n", "x.txt")
    assert name == "x" and values.tolist() == [1.0, 2.5, -3.0]
    name, values = parse_track_file(b"nesting,other\n0,9\n1,9\n", "t.csv")
    assert name == "nesting" and values.tolist() == [0.0, 1.0]


@pytest.mark.parametrize("content,message", [
    (b"", "no values"),
    (b"depth\n1\nabc\n", "value 3: 'abc' is not a number"),
    (b"\xff\xfe\x00garbage", "neither a .npy array nor UTF-8"),
])
def test_bad_files_say_where(content, message):
    with pytest.raises(TrackFileError, match=message):
        parse_track_file(content, "f.csv")


def test_npy_must_be_one_dimensional():
    buf = io.BytesIO()
    np.save(buf, np.zeros((2, 2)))
    with pytest.raises(TrackFileError, match="1-D"):
        parse_track_file(buf.getvalue(), "f.npy")


def test_cli_attaches_a_track_or_explains(tmp_path, capsys):
    from backend.store import RunStore
    from backend.store.hidden import KIND, TRACK_KIND, write_hidden_snapshot

    store = RunStore(tmp_path)
    run_id = store.create_run("r", "brackets-lstm", {})
    write_hidden_snapshot(store, run_id, 0, {(0, "fwd", "h"): np.zeros((5, 2), np.float16)}, np.zeros(5, int),
                          ["a"], {}, {})
    bad = tmp_path / "short.txt"
    bad.write_text("1\n2\n")
    assert main(["track", run_id, str(bad), "--data-dir", str(tmp_path)]) == 2
    assert "2 values but the probe corpus has 5 tokens" in capsys.readouterr().err
    assert store.list_snapshots(run_id, TRACK_KIND) == []
    good = tmp_path / "good.csv"
    good.write_text("parity\n0\n1\n0\n1\n0\n")
    assert main(["track", run_id, str(good), "--data-dir", str(tmp_path)]) == 0
    assert "attached track 'parity'" in capsys.readouterr().out
    assert [r["meta"]["name"] for r in store.list_snapshots(run_id, TRACK_KIND)] == ["parity"]
    assert len(store.list_snapshots(run_id, KIND)) == 1  # nothing else touched
