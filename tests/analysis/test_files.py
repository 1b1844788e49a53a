"""Tests of aligniform.analysis.files: embeddings read from .npz files and folders of .npy files."""

import numpy as np
import pytest

from aligniform import metrics
from aligniform.analysis import analyze_embeddings, load_embedding_file
from tests.analysis.toy import unit_pairs


def test_npz_and_npy_folder_give_the_same_analysis(tmp_path):
    x, y, labels = unit_pairs()
    np.savez(tmp_path / "emb.npz", x=x, y=y, labels=labels)
    folder = tmp_path / "emb"
    folder.mkdir()
    for name, array in {"x": x, "y": y, "labels": labels}.items():
        np.save(folder / f"{name}.npy", array)
    (folder / "notes.txt").write_text("other files are ignored")
    from_npz, from_folder = load_embedding_file(tmp_path / "emb.npz"), load_embedding_file(str(folder))
    assert np.array_equal(from_npz.x, x) and np.array_equal(from_folder.y, y)
    assert np.array_equal(from_folder.labels, labels) and from_npz.source.endswith("emb.npz")
    a, b = analyze_embeddings(from_npz), analyze_embeddings(from_folder)
    assert {k: v for k, v in a.items() if k != "source"} == {k: v for k, v in b.items() if k != "source"}
    assert a["alignment"] == pytest.approx(metrics.alignment(x, y))


def test_y_and_labels_are_optional_in_files(tmp_path):
    x, _, _ = unit_pairs(n=20)
    np.savez(tmp_path / "only_x.npz", x=x)
    emb = load_embedding_file(tmp_path / "only_x.npz")
    assert emb.y is None and emb.labels is None and emb.n == 20


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"y": np.eye(3)}, "no array x"),
        ({"x": np.eye(3), "label": np.arange(3)}, "unexpected array"),
        ({"x": np.eye(4), "y": np.eye(3)}, "same shape"),
        ({"x": np.ones(5)}, "2-D"),
        ({"x": np.ones((2, 3, 4))}, "2-D"),
        ({"x": np.eye(3, dtype=np.int64)}, "floating-point"),
        ({"x": np.eye(3)[:1]}, "at least 2 rows"),
        ({"x": np.eye(3), "labels": np.arange(4)}, "one label per row"),
        ({"x": np.eye(3), "labels": np.array([0.5, 1, 2])}, "integer"),
    ],
)
def test_bad_npz_files_raise_clear_errors(tmp_path, arrays, message):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match=message):
        load_embedding_file(tmp_path / "bad.npz")


def test_bad_paths_raise_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_embedding_file(tmp_path / "missing.npz")
    with pytest.raises(ValueError, match="no x.npy"):
        load_embedding_file(tmp_path)
    np.save(tmp_path / "x.npy", np.eye(3))
    with pytest.raises(ValueError, match="single .npy"):
        load_embedding_file(tmp_path / "x.npy")
    (tmp_path / "broken.npz").write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="cannot be read"):
        load_embedding_file(tmp_path / "broken.npz")
    np.save(tmp_path / "y.npy", np.eye(4))
    with pytest.raises(ValueError, match="same shape"):
        load_embedding_file(tmp_path)


@pytest.mark.parametrize(
    "labels", [np.array(["cat", "dog", "cat"]), np.array([b"a", b"b", b"a"]), np.array(["a", 1, 2], dtype=object)]
)
def test_non_numeric_labels_name_the_array_and_the_file(tmp_path, labels):
    # An object array cannot be read without pickle; text labels can, and are refused as labels.
    np.savez(tmp_path / "named.npz", x=np.eye(3), labels=labels)
    with pytest.raises(ValueError, match=r"named\.npz") as error:
        load_embedding_file(tmp_path / "named.npz")
    assert "labels" in str(error.value).replace(str(tmp_path), "")


class _Touch:
    """An object whose unpickling would create a file: proof that nothing is unpickled."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (type(self.marker).touch, (self.marker,))


def test_files_that_need_pickle_are_refused_without_running_their_code(tmp_path):
    from aligniform.analysis.files import PickledArrayError

    marker = tmp_path / "code_ran"
    objects = np.array([_Touch(marker)] * 3, dtype=object)
    np.savez(tmp_path / "objects.npz", x=np.eye(3), y=objects)
    with pytest.raises(PickledArrayError, match=r"objects\.npz: array y holds Python objects.*does not unpickle"):
        load_embedding_file(tmp_path / "objects.npz")
    folder = tmp_path / "npy"
    folder.mkdir()
    np.save(folder / "x.npy", np.eye(3))
    np.save(folder / "labels.npy", objects)
    with pytest.raises(ValueError, match=r"labels\.npy: array labels holds Python objects"):
        load_embedding_file(folder)
    assert not marker.exists()


def test_every_numpy_read_in_the_package_refuses_pickle():
    import re
    from pathlib import Path

    import aligniform

    package = Path(aligniform.__file__).parent
    for source in package.rglob("*.py"):
        for call in re.findall(r"np\.load\([^)]*\)", source.read_text()):
            assert "allow_pickle=False" in call, f"{source}: {call}"


# ----------------------------------------------------------------------------- issue 19: read safely, name the kind


def _header(shape):
    import io

    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "<f4", "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def test_a_renamed_npy_is_named_not_a_type_error(tmp_path):
    np.save(tmp_path / "x.npy", np.eye(3))
    (tmp_path / "x.npy").rename(tmp_path / "emb.npz")
    with pytest.raises(ValueError, match=r"single \.npy array, not an \.npz archive"):
        load_embedding_file(tmp_path / "emb.npz")
    (tmp_path / "text.npz").write_text("not an archive")
    with pytest.raises(ValueError, match="not a zip archive"):
        load_embedding_file(tmp_path / "text.npz")


def test_sizes_are_checked_before_allocating(tmp_path):
    import zipfile

    from aligniform.analysis.files import ArraySizeError

    with zipfile.ZipFile(tmp_path / "huge.npz", "w") as archive:
        archive.writestr("x.npy", _header((10**11, 16)) + b"\0" * 16)
    with pytest.raises(ArraySizeError, match=r"x claims shape \(100000000000, 16\) of float32"):
        load_embedding_file(tmp_path / "huge.npz")
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "x.npy").write_bytes(_header((4, 2)) + b"\0" * 31)  # one byte short: truncated
    with pytest.raises(ArraySizeError, match="holds 31 bytes of data; the file is corrupt or truncated"):
        load_embedding_file(folder)
    (folder / "x.npy").write_bytes(_header((4, 2)) + b"\0" * 32)  # exactly the data claimed: read
    assert load_embedding_file(folder).n == 4


def test_a_path_is_named_for_what_it_is(tmp_path):
    import os

    from aligniform.analysis import load_embeddings
    from aligniform.errors import OptionError

    run = tmp_path / "run"
    run.mkdir()
    (run / "best.pt").write_bytes(b"")
    with pytest.raises(OptionError, match=r"`path` .*run is a run folder, not embeddings; give its checkpoint"):
        load_embeddings(run)
    with pytest.raises(OptionError, match=r"folder without x\.npy \(found: run\)"):
        load_embeddings(tmp_path)
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(OptionError, match=r"not a regular file \(a FIFO"):
        load_embeddings(tmp_path / "fifo")
