"""load_cifar refuses data files that are not what they should be, naming the file.

Checked: archive MD5, the SHA256SUMS manifest (written when a verified archive is extracted, or
carried by a folder), record counts against the official layout, label ranges, whole records,
symbolic links, download failures. The real CIFAR-10 subset in /work/shared/data is used when
present.
"""

import dataclasses
import hashlib
import http.client
import io
import os
import shutil
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from adabias.problems import data as D
from adabias.problems.data import DataIntegrityError, DataUnavailableError, load_cifar

SUBSET = Path("/work/shared/data/cifar-10-subset")
TEN = "cifar-10-batches-bin"
HUNDRED = "cifar-100-binary"
BATCHES = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
needs_subset = pytest.mark.skipif(
    not (SUBSET / TEN / "test_batch.bin").is_file(), reason="CIFAR-10 subset not available"
)


# ---------------------------------------------------------------- helpers
def records(n, label_bytes=1, seed=0, labels=None):
    rng = np.random.default_rng(seed)
    recs = rng.integers(0, 256, size=(n, 3072 + label_bytes), dtype=np.uint8)
    for j, classes in enumerate(labels or ([10] if label_bytes == 1 else [20, 100])):
        recs[:, j] = rng.integers(0, classes, size=n)
    return recs


def sha256sums(folder, names, prefix=""):
    return "".join(
        f"{hashlib.sha256((folder / n).read_bytes()).hexdigest()}  {prefix}{n}\n" for n in names
    )


def write_cifar10(folder, n=3, files=BATCHES, manifest=True, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    for k, name in enumerate(files):
        (folder / name).write_bytes(records(n, seed=seed + k).tobytes())
    if manifest:
        (folder / "SHA256SUMS").write_text(sha256sums(folder, files))
    return folder


def write_cifar100(folder, n_train=4, n_test=2, manifest=True, coarse=None, fine=None):
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for k, (name, n) in enumerate([("train.bin", n_train), ("test.bin", n_test)]):
        recs = records(n, label_bytes=2, seed=10 + k)
        if name == "train.bin" and coarse is not None:
            recs[1, 0] = coarse
        if name == "train.bin" and fine is not None:
            recs[1, 1] = fine
        (folder / name).write_bytes(recs.tobytes())
        out[name] = recs
    if manifest:
        (folder / "SHA256SUMS").write_text(sha256sums(folder, ["train.bin", "test.bin"]))
    return out


def patch_spec(monkeypatch, name, **changes):
    spec = dataclasses.replace(D.CIFAR_SPECS[name], **changes)
    monkeypatch.setitem(D.CIFAR_SPECS, name, spec)
    return spec


def official_small(monkeypatch, n=3):
    """Pretend the official layout has ``n`` records per file (real files are 30 MB each)."""
    patch_spec(monkeypatch, "cifar10", train_records=n, test_records=n)
    patch_spec(monkeypatch, "cifar100", train_records=n, test_records=n)


def flip(path, offset, mask=1):
    raw = bytearray(path.read_bytes())
    raw[offset] ^= mask
    path.write_bytes(bytes(raw))


def make_archive(tmp_path, folder_name=TEN, files=BATCHES, extra=None):
    src = write_cifar10(tmp_path / "src" / folder_name, files=files, manifest=False)
    archive = tmp_path / "archive.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src, arcname=folder_name)
        if extra is not None:
            extra(tar)
    return archive, hashlib.md5(archive.read_bytes()).hexdigest()


def place_archive(tmp_path, monkeypatch, **kwargs):
    archive, md5 = make_archive(tmp_path, **kwargs)
    root = tmp_path / "root"
    root.mkdir()
    shutil.copy(archive, root / "cifar-10-binary.tar.gz")
    patch_spec(monkeypatch, "cifar10", md5=md5)
    return root


# ---------------------------------------------------------------- the real subset
@needs_subset
def test_real_subset_loads_and_verifies_against_its_manifest():
    x_tr, y_tr, x_te, y_te = load_cifar("cifar10", root=SUBSET)
    assert x_tr.shape == (5000, 32, 32, 3) and x_te.shape == (1000, 32, 32, 3)
    assert x_tr.dtype == np.uint8 and y_tr.dtype == np.int64
    np.testing.assert_array_equal(y_tr[:10], [6, 9, 9, 4, 1, 1, 2, 7, 8, 3])
    np.testing.assert_array_equal(y_te[:10], [3, 8, 8, 0, 6, 6, 1, 6, 3, 1])
    assert set(np.unique(y_tr)) == set(range(10))
    # root pointing directly at the .bin folder: the manifest one level up still covers it
    _, y2, _, _ = load_cifar("cifar10", root=SUBSET / TEN)
    np.testing.assert_array_equal(y2, y_tr)
    # channel order: rebuild record 3 of test_batch.bin by hand
    rec = (SUBSET / TEN / "test_batch.bin").read_bytes()[3 * 3073 : 4 * 3073]
    assert rec[0] == y_te[3]
    for row, col in [(0, 0), (5, 17), (31, 31)]:
        for c in range(3):
            assert x_te[3, row, col, c] == rec[1 + c * 1024 + row * 32 + col]


@needs_subset
def test_real_subset_copy_with_a_flipped_pixel_is_refused(tmp_path):
    root = tmp_path / "subset"
    shutil.copytree(SUBSET, root)
    for p in root.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    flip(root / TEN / "data_batch_4.bin", 1000 * 3073 - 7)
    with pytest.raises(DataIntegrityError, match=r"SHA-256 mismatch.*data_batch_4\.bin"):
        load_cifar("cifar10", root=root)


@needs_subset
def test_real_subset_without_its_manifest_is_refused_with_the_fix(tmp_path):
    root = tmp_path / "subset"
    shutil.copytree(SUBSET / TEN, root / TEN)
    with pytest.raises(DataIntegrityError) as err:
        load_cifar("cifar10", root=root)
    msg = str(err.value)
    assert "holds 1000 records, not 10000" in msg
    assert "cifar-10-binary.tar.gz" in msg and "SHA256SUMS" in msg and str(root) in msg


# ---------------------------------------------------------------- official layout, counts
def test_official_layout_without_manifest_loads(tmp_path, monkeypatch):
    official_small(monkeypatch)
    write_cifar10(tmp_path / TEN, manifest=False)
    x_tr, _, _, y_te = load_cifar("cifar10", root=tmp_path)
    assert x_tr.shape == (15, 32, 32, 3) and y_te.shape == (3,)


@pytest.mark.parametrize("name", BATCHES)
@pytest.mark.parametrize("n", [1, 2, 4, 13])
def test_wrong_record_count_without_manifest_is_refused(tmp_path, monkeypatch, name, n):
    official_small(monkeypatch)
    folder = write_cifar10(tmp_path / TEN, manifest=False)
    (folder / name).write_bytes(records(n).tobytes())
    with pytest.raises(DataIntegrityError, match=rf"{name} holds {n} records, not 3"):
        load_cifar("cifar10", root=tmp_path)


def test_subset_without_manifest_is_refused_at_the_real_layout(tmp_path):
    write_cifar10(tmp_path / TEN, manifest=False)
    with pytest.raises(DataIntegrityError, match="not 10000.*SHA256SUMS"):
        load_cifar("cifar10", root=tmp_path)


@pytest.mark.parametrize("gone", [(2,), (1, 5), (2, 3, 4)])
def test_missing_train_files_without_manifest_are_refused(tmp_path, monkeypatch, gone):
    official_small(monkeypatch)
    folder = write_cifar10(tmp_path / TEN, manifest=False)
    for i in gone:
        (folder / f"data_batch_{i}.bin").unlink()
    with pytest.raises(DataIntegrityError, match=rf"data_batch_{gone[0]}\.bin.*missing"):
        load_cifar("cifar10", root=tmp_path)


def test_missing_train_files_under_manifest_load_with_a_warning(tmp_path):
    files = ["data_batch_1.bin", "data_batch_3.bin", "test_batch.bin"]
    write_cifar10(tmp_path / TEN, files=files)
    with pytest.warns(UserWarning, match=r"data_batch_2\.bin"):
        x_tr, _, x_te, _ = load_cifar("cifar10", root=tmp_path)
    assert x_tr.shape == (6, 32, 32, 3) and x_te.shape == (3, 32, 32, 3)


def test_manifest_with_only_the_test_file_has_no_train_file(tmp_path):
    write_cifar10(tmp_path / TEN, files=["test_batch.bin"])
    with pytest.raises(DataIntegrityError, match="no train file"):
        load_cifar("cifar10", root=tmp_path)


@pytest.mark.parametrize("manifest", [False, True])
@pytest.mark.parametrize("name", ["data_batch_2.bin", "test_batch.bin"])
@pytest.mark.parametrize("extra", [-5, -1, 1, 3072, -3072])
def test_partial_record_is_refused_by_name(tmp_path, monkeypatch, manifest, name, extra):
    official_small(monkeypatch)
    folder = write_cifar10(tmp_path / TEN, manifest=False)
    raw = (folder / name).read_bytes()
    (folder / name).write_bytes(raw[:extra] if extra < 0 else raw + bytes(extra))
    if manifest:  # a manifest vouches for the bytes, not for a torn record
        (folder / "SHA256SUMS").write_text(sha256sums(folder, BATCHES))
    size = len(raw) + extra
    with pytest.raises(DataIntegrityError, match=rf"{name}: size {size} bytes.*3073-byte records"):
        load_cifar("cifar10", root=tmp_path)


def test_empty_file_is_refused(tmp_path):
    folder = write_cifar10(tmp_path / TEN, manifest=False)
    (folder / "data_batch_3.bin").write_bytes(b"")
    (folder / "SHA256SUMS").write_text(sha256sums(folder, BATCHES))
    with pytest.raises(DataIntegrityError, match=r"data_batch_3\.bin: size 0"):
        load_cifar("cifar10", root=tmp_path)


def test_cifar100_file_read_as_cifar10_is_refused(tmp_path):
    folder = write_cifar10(tmp_path / TEN, manifest=False)
    (folder / "test_batch.bin").write_bytes(records(3073, label_bytes=2).tobytes()[: 3073 * 7 + 1])
    (folder / "SHA256SUMS").write_text(sha256sums(folder, BATCHES))
    with pytest.raises(DataIntegrityError, match=r"test_batch\.bin: size"):
        load_cifar("cifar10", root=tmp_path)


# ---------------------------------------------------------------- labels
@pytest.mark.parametrize("manifest", [False, True])
@pytest.mark.parametrize("name", ["data_batch_1.bin", "data_batch_5.bin", "test_batch.bin"])
@pytest.mark.parametrize("label", [10, 11, 127, 200, 255])
def test_cifar10_label_out_of_range_is_refused(tmp_path, monkeypatch, manifest, name, label):
    official_small(monkeypatch)
    folder = write_cifar10(tmp_path / TEN, manifest=False)
    recs = np.frombuffer((folder / name).read_bytes(), np.uint8).reshape(-1, 3073).copy()
    recs[2, 0] = label
    (folder / name).write_bytes(recs.tobytes())
    if manifest:
        (folder / "SHA256SUMS").write_text(sha256sums(folder, BATCHES))
    with pytest.raises(DataIntegrityError, match=rf"{name}: record 2 has label {label}, outside 0…9"):
        load_cifar("cifar10", root=tmp_path)


def test_cifar100_fine_labels_are_returned(tmp_path):
    recs = write_cifar100(tmp_path / HUNDRED)
    x_tr, y_tr, x_te, y_te = load_cifar("cifar100", root=tmp_path)
    np.testing.assert_array_equal(y_tr, recs["train.bin"][:, 1])
    np.testing.assert_array_equal(y_te, recs["test.bin"][:, 1])
    assert x_tr.shape == (4, 32, 32, 3) and x_te.shape == (2, 32, 32, 3)
    assert x_te[0, 2, 7, 1] == recs["test.bin"][0][2 + 1024 + 2 * 32 + 7]


@pytest.mark.parametrize("coarse, fine", [(19, 99), (0, 0), (19, 0), (0, 99)])
def test_cifar100_label_range_edges_load(tmp_path, coarse, fine):
    write_cifar100(tmp_path / HUNDRED, coarse=coarse, fine=fine)
    _, y_tr, _, _ = load_cifar("cifar100", root=tmp_path)
    assert y_tr[1] == fine


@pytest.mark.parametrize(
    "coarse, fine, match",
    [
        (20, None, "coarse label 20, outside 0…19"),
        (99, None, "coarse label 99, outside 0…19"),
        (255, None, "coarse label 255"),
        (None, 100, "fine label 100, outside 0…99"),
        (None, 200, "fine label 200"),
        (None, 255, "fine label 255"),
    ],
)
def test_cifar100_label_out_of_range_is_refused(tmp_path, coarse, fine, match):
    write_cifar100(tmp_path / HUNDRED, coarse=coarse, fine=fine)
    with pytest.raises(DataIntegrityError, match=rf"train\.bin: record 1 has {match}"):
        load_cifar("cifar100", root=tmp_path)


def test_cifar100_official_counts(tmp_path, monkeypatch):
    write_cifar100(tmp_path / HUNDRED, n_train=4, n_test=2, manifest=False)
    with pytest.raises(DataIntegrityError, match=r"train\.bin holds 4 records, not 50000"):
        load_cifar("cifar100", root=tmp_path)
    patch_spec(monkeypatch, "cifar100", train_records=4, test_records=3)
    with pytest.raises(DataIntegrityError, match=r"test\.bin holds 2 records, not 3"):
        load_cifar("cifar100", root=tmp_path)
    patch_spec(monkeypatch, "cifar100", train_records=4, test_records=2)
    assert load_cifar("cifar100", root=tmp_path)[0].shape == (4, 32, 32, 3)


def test_cifar100_partial_record_is_refused(tmp_path):
    write_cifar100(tmp_path / HUNDRED)
    path = tmp_path / HUNDRED / "test.bin"
    path.write_bytes(path.read_bytes() + b"\0")
    (tmp_path / HUNDRED / "SHA256SUMS").write_text(
        sha256sums(tmp_path / HUNDRED, ["train.bin", "test.bin"])
    )
    with pytest.raises(DataIntegrityError, match=r"test\.bin: size 6149 bytes.*3074-byte"):
        load_cifar("cifar100", root=tmp_path)


# ---------------------------------------------------------------- manifest
@pytest.mark.parametrize("name", BATCHES)
@pytest.mark.parametrize("offset", [0, 1, 3073 + 1500, 3 * 3073 - 1])
def test_flipped_byte_under_manifest_is_refused(tmp_path, name, offset):
    write_cifar10(tmp_path / TEN)
    flip(tmp_path / TEN / name, offset, mask=1 if offset else 0x02)  # label 0..9 stays in range
    with pytest.raises(DataIntegrityError, match=rf"SHA-256 mismatch for .*{name}"):
        load_cifar("cifar10", root=tmp_path)


def test_changed_listed_extra_file_is_refused(tmp_path):
    folder = write_cifar10(tmp_path / TEN, manifest=False)
    (folder / "batches.meta.txt").write_text("airplane\n")
    (folder / "SHA256SUMS").write_text(sha256sums(folder, [*BATCHES, "batches.meta.txt"]))
    load_cifar("cifar10", root=tmp_path)
    (folder / "batches.meta.txt").write_text("airplanf\n")
    with pytest.raises(DataIntegrityError, match=r"batches\.meta\.txt"):
        load_cifar("cifar10", root=tmp_path)


def test_parent_manifest_like_the_real_subset(tmp_path):
    folder = write_cifar10(tmp_path / TEN, manifest=False)
    (tmp_path / "SHA256SUMS").write_text(sha256sums(folder, BATCHES, prefix=f"{TEN}/"))
    assert load_cifar("cifar10", root=tmp_path)[0].shape == (15, 32, 32, 3)
    assert load_cifar("cifar10", root=folder)[0].shape == (15, 32, 32, 3)
    flip(folder / "test_batch.bin", 9)
    with pytest.raises(DataIntegrityError, match=r"test_batch\.bin"):
        load_cifar("cifar10", root=tmp_path)


def test_parent_manifest_for_other_files_does_not_vouch(tmp_path):
    folder = write_cifar10(tmp_path / TEN, manifest=False)
    (tmp_path / "other.txt").write_text("x")
    (tmp_path / "SHA256SUMS").write_text(sha256sums(tmp_path, ["other.txt"]))
    with pytest.raises(DataIntegrityError, match="not 10000.*no SHA256SUMS manifest"):
        load_cifar("cifar10", root=folder)


@pytest.mark.parametrize(
    "line",
    [
        "deadbeef  data_batch_1.bin",
        "g" * 64 + "  data_batch_1.bin",
        "0" * 65 + "  data_batch_1.bin",
        "0" * 64 + "data_batch_1.bin",
        "0" * 64 + " data_batch_1.bin",  # one space: no mode character
        "0" * 64 + "  /etc/passwd",
        "0" * 64 + "  ../outside.bin",
        "0" * 64 + "  a\\b.bin",
        "# a comment",
        "data_batch_1.bin  " + "0" * 64,
    ],
)
def test_malformed_manifest_line_is_refused_with_its_number(tmp_path, line):
    folder = write_cifar10(tmp_path / TEN)
    good = (folder / "SHA256SUMS").read_text()
    (folder / "SHA256SUMS").write_text(good + line + "\n")
    with pytest.raises(DataIntegrityError, match=r"SHA256SUMS, line 7: .*not a sha256sum line"):
        load_cifar("cifar10", root=tmp_path)


def test_manifest_formats_and_edge_cases(tmp_path):
    folder = write_cifar10(tmp_path / TEN)
    manifest = folder / "SHA256SUMS"
    good = manifest.read_text()
    # binary-mode marker, upper-case hex and blank lines are sha256sum's format too
    binary = "".join(f"{ln[:64].upper()} *{ln[66:]}\n" for ln in good.splitlines())
    manifest.write_text("\n" + binary + "\n")
    assert load_cifar("cifar10", root=tmp_path)[0].shape == (15, 32, 32, 3)
    manifest.write_text(good + good.splitlines()[0] + "\n")
    with pytest.raises(DataIntegrityError, match="listed twice"):
        load_cifar("cifar10", root=tmp_path)
    manifest.write_text("\n")
    with pytest.raises(DataIntegrityError, match="lists no files"):
        load_cifar("cifar10", root=tmp_path)
    wrong = "0" * 64 + good.splitlines()[2][64:]  # right format, wrong digest
    manifest.write_text("\n".join([*good.splitlines()[:2], wrong, *good.splitlines()[3:]]) + "\n")
    with pytest.raises(DataIntegrityError, match=r"SHA-256 mismatch for .*data_batch_3\.bin"):
        load_cifar("cifar10", root=tmp_path)


@pytest.mark.parametrize("name", BATCHES)
def test_manifest_missing_a_loaded_file_is_refused(tmp_path, name):
    folder = write_cifar10(tmp_path / TEN)
    kept = [ln for ln in (folder / "SHA256SUMS").read_text().splitlines() if name not in ln]
    (folder / "SHA256SUMS").write_text("\n".join(kept) + "\n")
    with pytest.raises(DataIntegrityError, match=rf"does not list {name}"):
        load_cifar("cifar10", root=tmp_path)


@pytest.mark.parametrize("name", ["data_batch_2.bin", "batches.meta.txt"])
def test_listed_file_that_is_gone_is_refused(tmp_path, name):
    folder = write_cifar10(tmp_path / TEN, manifest=False)
    (folder / "batches.meta.txt").write_text("x\n")
    (folder / "SHA256SUMS").write_text(sha256sums(folder, [*BATCHES, "batches.meta.txt"]))
    (folder / name).unlink()
    with pytest.raises(DataIntegrityError, match=rf"{name} is listed in .*SHA256SUMS but is missing"):
        load_cifar("cifar10", root=tmp_path)


# ---------------------------------------------------------------- symbolic links
@pytest.mark.parametrize("manifest", [False, True])
@pytest.mark.parametrize("name, target", [
    ("data_batch_2.bin", "data_batch_1.bin"),
    ("data_batch_5.bin", "test_batch.bin"),
    ("test_batch.bin", "data_batch_1.bin"),
])
def test_symlinked_batch_is_refused(tmp_path, monkeypatch, manifest, name, target):
    official_small(monkeypatch)
    folder = write_cifar10(tmp_path / TEN, manifest=False)
    (folder / name).unlink()
    (folder / name).symlink_to(target)
    if manifest:
        (folder / "SHA256SUMS").write_text(sha256sums(folder, BATCHES))
    with pytest.raises(DataIntegrityError, match=rf"{name} is a symbolic link"):
        load_cifar("cifar10", root=tmp_path)


def test_dangling_and_absolute_symlinks_are_refused(tmp_path, monkeypatch):
    official_small(monkeypatch)
    folder = write_cifar10(tmp_path / TEN, manifest=False)
    elsewhere = write_cifar10(tmp_path / "elsewhere", manifest=False, seed=7)
    (folder / "data_batch_4.bin").unlink()
    (folder / "data_batch_4.bin").symlink_to(elsewhere / "data_batch_4.bin")
    with pytest.raises(DataIntegrityError, match=r"data_batch_4\.bin is a symbolic link"):
        load_cifar("cifar10", root=tmp_path)
    (folder / "data_batch_4.bin").unlink()
    (folder / "data_batch_4.bin").symlink_to(tmp_path / "nowhere.bin")
    with pytest.raises(DataIntegrityError, match=r"data_batch_4\.bin is a symbolic link"):
        load_cifar("cifar10", root=tmp_path)
    (folder / "data_batch_4.bin").unlink()
    shutil.copy(elsewhere / "data_batch_4.bin", folder / "data_batch_4.bin")
    assert load_cifar("cifar10", root=tmp_path)[0].shape == (15, 32, 32, 3)
    (folder / "test_batch.bin").unlink()
    (folder / "test_batch.bin").symlink_to(tmp_path / "nowhere.bin")
    with pytest.raises(DataIntegrityError, match=r"test_batch\.bin is a symbolic link"):
        load_cifar("cifar10", root=tmp_path)


def test_symlinked_data_folder_is_refused(tmp_path, monkeypatch):
    official_small(monkeypatch)
    real = write_cifar10(tmp_path / "real", manifest=True)
    root = tmp_path / "root"
    root.mkdir()
    (root / TEN).symlink_to(real, target_is_directory=True)
    with pytest.raises(DataIntegrityError, match=rf"{TEN} is a symbolic link"):
        load_cifar("cifar10", root=root)
    assert load_cifar("cifar10", root=real)[0].shape == (15, 32, 32, 3)  # root may be anything


def test_symlinked_manifest_and_listed_file_are_refused(tmp_path):
    folder = write_cifar10(tmp_path / TEN)
    (tmp_path / "SUMS").write_text((folder / "SHA256SUMS").read_text())
    (folder / "SHA256SUMS").unlink()
    (folder / "SHA256SUMS").symlink_to(tmp_path / "SUMS")
    with pytest.raises(DataIntegrityError, match=r"SHA256SUMS is a symbolic link"):
        load_cifar("cifar10", root=tmp_path)
    (folder / "SHA256SUMS").unlink()
    (tmp_path / "meta").write_text("x\n")
    (folder / "batches.meta.txt").symlink_to(tmp_path / "meta")
    (folder / "SHA256SUMS").write_text(sha256sums(folder, [*BATCHES, "batches.meta.txt"]))
    with pytest.raises(DataIntegrityError, match=r"batches\.meta\.txt is a symbolic link"):
        load_cifar("cifar10", root=tmp_path)


# ---------------------------------------------------------------- archive
def test_verified_archive_is_extracted_with_a_manifest_that_later_loads_check(tmp_path, monkeypatch):
    root = place_archive(tmp_path, monkeypatch)
    x_tr, _, x_te, _ = load_cifar("cifar10", root=root)
    assert x_tr.shape == (15, 32, 32, 3) and x_te.shape == (3, 32, 32, 3)
    folder = root / TEN
    manifest = (folder / "SHA256SUMS").read_text()
    assert manifest == sha256sums(folder, sorted(BATCHES))
    assert sorted(p.name for p in folder.iterdir()) == sorted([*BATCHES, "SHA256SUMS"])  # no temp
    np.testing.assert_array_equal(load_cifar("cifar10", root=root)[0], x_tr)
    flip(folder / "data_batch_3.bin", 3073 + 100)
    with pytest.raises(DataIntegrityError, match=r"SHA-256 mismatch for .*data_batch_3\.bin"):
        load_cifar("cifar10", root=root)


def test_archive_md5_mismatch_is_refused_and_kept(tmp_path):
    archive, md5 = make_archive(tmp_path)
    root = tmp_path / "root"
    root.mkdir()
    target = root / "cifar-10-binary.tar.gz"
    shutil.copy(archive, target)
    with pytest.raises(DataIntegrityError) as err:
        load_cifar("cifar10", root=root)
    msg = str(err.value)
    assert "c32a1d4ab5d03f1284b67883e8d87530" in msg and md5 in msg and str(target) in msg
    assert isinstance(err.value, ValueError) and target.exists()  # a user's file is not deleted


def test_unsafe_archive_members_are_refused(tmp_path, monkeypatch):
    def evil(tar):
        info = tarfile.TarInfo("../evil.bin")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"abc"))

    root = place_archive(tmp_path, monkeypatch, extra=evil)
    with pytest.raises(DataIntegrityError, match="unsafe"):
        load_cifar("cifar10", root=root)
    assert not (tmp_path / "evil.bin").exists()


def test_archive_with_a_symlink_member_is_refused(tmp_path, monkeypatch):
    def link(tar):
        info = tarfile.TarInfo(f"{TEN}/link.bin")
        info.type, info.linkname = tarfile.SYMTYPE, "data_batch_1.bin"
        tar.addfile(info)

    root = place_archive(tmp_path, monkeypatch, extra=link)
    with pytest.raises(DataIntegrityError, match="link.bin.*not a file/dir"):
        load_cifar("cifar10", root=root)


def test_archive_never_writes_through_an_existing_symlink(tmp_path, monkeypatch):
    root = place_archive(tmp_path, monkeypatch)
    victim = tmp_path / "victim.bin"
    victim.write_bytes(b"keep")
    (root / TEN).mkdir()
    (root / TEN / "data_batch_2.bin").symlink_to(victim)
    with pytest.raises(DataIntegrityError, match=r"data_batch_2\.bin is a symbolic link"):
        load_cifar("cifar10", root=root)
    assert victim.read_bytes() == b"keep"


def test_corrupt_or_foreign_archive_with_matching_md5_is_refused(tmp_path, monkeypatch):
    root = tmp_path / "root"
    root.mkdir()
    (root / "cifar-10-binary.tar.gz").write_bytes(b"not a gzip file")
    patch_spec(monkeypatch, "cifar10", md5=hashlib.md5(b"not a gzip file").hexdigest())
    with pytest.raises(DataIntegrityError, match="cannot be extracted"):
        load_cifar("cifar10", root=root)
    root = place_archive(tmp_path / "b", monkeypatch, folder_name="other-folder")
    with pytest.raises(DataIntegrityError, match="does not hold cifar-10-batches-bin/test_batch"):
        load_cifar("cifar10", root=root)


# ---------------------------------------------------------------- download
def test_download_uses_the_official_url_and_deletes_a_mismatching_file(tmp_path, monkeypatch):
    archive, md5 = make_archive(tmp_path)
    seen = []

    def fake_urlopen(url, *args, **kwargs):
        seen.append(url)
        return open(archive, "rb")

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    root = tmp_path / "dl"
    with pytest.raises(DataIntegrityError, match="MD5 mismatch.*deleted"):
        load_cifar("cifar10", root=root, download=True)
    assert not (root / "cifar-10-binary.tar.gz").exists()
    assert seen == ["https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"]
    patch_spec(monkeypatch, "cifar10", md5=md5)
    x_tr, _, _, y_te = load_cifar("cifar10", root=root, download=True)
    assert x_tr.shape == (15, 32, 32, 3) and y_te.shape == (3,)
    assert (root / TEN / "SHA256SUMS").is_file()


def test_download_failure_names_the_url_and_where_to_place_the_file(tmp_path, monkeypatch):
    url = (tmp_path / "no" / "such" / "cifar-10-binary.tar.gz").as_uri()
    patch_spec(monkeypatch, "cifar10", url=url)
    root = tmp_path / "data"
    with pytest.raises(DataUnavailableError) as err:
        load_cifar("cifar10", root=root, download=True)
    msg = str(err.value)
    assert url in msg and "cifar-10-binary.tar.gz" in msg and f"folder {root}" in msg
    assert isinstance(err.value, FileNotFoundError)
    assert list(root.iterdir()) == []  # no partial file left


@pytest.mark.parametrize("error", [
    urllib.error.URLError("no network"),
    urllib.error.HTTPError("u", 404, "Not Found", None, None),
    TimeoutError("timed out"),
    http.client.IncompleteRead(b"abc"),
    ValueError("unknown url type"),
])
def test_download_errors_of_every_kind_say_how_to_place_the_file(tmp_path, monkeypatch, error):
    def failing(url, *args, **kwargs):
        raise error

    monkeypatch.setattr(urllib.request, "urlopen", failing)
    with pytest.raises(DataUnavailableError, match=r"could not download https://www\.cs\.toronto"
                       r".*cifar-100-binary\.tar\.gz in the folder"):
        load_cifar("cifar100", root=tmp_path, download=True)


def test_nothing_found_without_download(tmp_path):
    with pytest.raises(DataUnavailableError) as err:
        load_cifar("cifar10", root=tmp_path)
    msg = str(err.value)
    assert str(tmp_path) in msg and "download=True" in msg and "cifar-10-binary.tar.gz" in msg


def test_default_root_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("ADABIAS_DATA", str(tmp_path))
    assert D.default_data_root() == tmp_path
    write_cifar10(tmp_path / TEN)
    assert load_cifar("cifar10")[0].shape == (15, 32, 32, 3)


def test_bad_name():
    with pytest.raises(ValueError, match="cifar10"):
        load_cifar("mnist")


def test_manifest_write_is_atomic_and_replaces_a_stale_one(tmp_path, monkeypatch):
    folder = write_cifar10(tmp_path / "f", manifest=False)
    (folder / "SHA256SUMS").write_text("stale\n")
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        D._write_manifest(folder, BATCHES)
    assert (folder / "SHA256SUMS").read_text() == "stale\n"  # the old file is intact
    assert sorted(p.name for p in folder.iterdir()) == sorted([*BATCHES, "SHA256SUMS"])
    monkeypatch.setattr(os, "replace", real_replace)
    D._write_manifest(folder, BATCHES)
    assert (folder / "SHA256SUMS").read_text() == sha256sums(folder, sorted(BATCHES))
