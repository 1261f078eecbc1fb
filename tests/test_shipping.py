"""nnlab.sweeps.executors.shipping (what `--ship` sends through Ray's object store), without Ray: a spec and its data laid out
again elsewhere read as written; run folders come back whole; archives that would write outside their
folder are refused."""

from __future__ import annotations

import io
import os
import tarfile

import pytest

from conftest import binary_table, tiny_spec, write_spec
from nnlab.errors import NnlabError
from nnlab.sweeps.executors.shipping import bundle_spec, bundle_specs, pack_run, unpack_bundle, unpack_run
from nnlab.spec import load_spec


def test_a_spec_and_its_data_unpack_elsewhere_and_read_as_written(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "specs").mkdir()
    binary_table().to_csv(tmp_path / "data" / "table.csv", index=False)
    spec = write_spec(tmp_path / "specs", tiny_spec(data_path="../data/table.csv"))
    bundle = bundle_spec(spec, [])
    assert sorted(name for name, _ in bundle.files) == ["data/table.csv", "specs/spec.yaml"] and not bundle.overrides
    copy = unpack_bundle(bundle, tmp_path / "node")
    assert copy == tmp_path / "node" / bundle.digest / "specs" / "spec.yaml"
    loaded, base = load_spec(copy)
    assert loaded.data.path == "../data/table.csv"
    assert (base / loaded.data.path).read_bytes() == (tmp_path / "data" / "table.csv").read_bytes()
    assert unpack_bundle(bundle, tmp_path / "node") == copy  # a second task on the node finds it there
    assert [p.name for p in (tmp_path / "node").iterdir()] == [bundle.digest]  # no partial copies left


def test_an_absolute_data_path_travels_beside_the_spec_and_the_data_path_follows(tmp_path):
    binary_table().to_csv(tmp_path / "table.csv", index=False)
    (tmp_path / "specs").mkdir()
    spec = write_spec(tmp_path / "specs", tiny_spec(data_path=str(tmp_path / "table.csv")))
    bundle = bundle_spec(spec, [])
    assert bundle.overrides == ("data.path=_data/table.csv",)
    copy = unpack_bundle(bundle, tmp_path / "node")
    loaded, base = load_spec(copy, list(bundle.overrides))
    assert (base / loaded.data.path).read_bytes() == (tmp_path / "table.csv").read_bytes()


def test_the_overrides_choose_the_data_file_and_the_digest_follows_the_content(tmp_path):
    binary_table().to_csv(tmp_path / "a.csv", index=False)
    binary_table(seed=1).to_csv(tmp_path / "b.csv", index=False)
    spec = write_spec(tmp_path, tiny_spec(data_path="a.csv"))
    a, b = bundle_spec(spec, []), bundle_spec(spec, ["data.path=b.csv"])
    assert dict(b.files)["b.csv"] == (tmp_path / "b.csv").read_bytes() and "a.csv" not in dict(b.files)
    assert a.digest != b.digest and bundle_spec(spec, []).digest == a.digest
    # A sweep's points share their bundle: read once, put into the object store once.
    points = bundle_specs([(spec, ["train.epochs=2"]), (spec, ["train.epochs=3"]), (spec, ["data.path=b.csv"])])
    assert points[0] is points[1] and points[0].digest == a.digest and points[2].digest == b.digest


def test_a_data_file_that_is_not_a_regular_file_is_refused_before_anything_is_sent(tmp_path):
    os.mkfifo(tmp_path / "pipe.csv")  # reading it would block forever
    spec = write_spec(tmp_path, tiny_spec(data_path="pipe.csv"))
    with pytest.raises(NnlabError, match=r"^--ship: data.path .*pipe.csv is not a regular file$"):
        bundle_spec(spec, [])


def test_a_run_folder_comes_back_whole(tmp_path):
    run = tmp_path / "store" / "tiny-20261122-000000-abcd"
    (run / "models").mkdir(parents=True)
    (run / "run.json").write_text('{"status": "completed"}')
    (run / "models" / "mlp.safetensors").write_bytes(bytes(range(256)) * 10)
    back = unpack_run(pack_run(run), tmp_path / "staging")
    assert back == tmp_path / "staging" / run.name
    assert sorted(p.relative_to(back).as_posix() for p in back.rglob("*")) == [
        "models", "models/mlp.safetensors", "run.json"]
    assert (back / "models" / "mlp.safetensors").read_bytes() == bytes(range(256)) * 10


def archive(*members: tarfile.TarInfo) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for member in members:
            tar.addfile(member, io.BytesIO(b"x" * member.size) if member.isfile() else None)
    return buffer.getvalue()


@pytest.mark.parametrize("name, kind, message", [
    ("../outside.txt", tarfile.REGTYPE, "leaves its folder"),
    ("/etc/evil", tarfile.REGTYPE, "leaves its folder"),
    ("run/link", tarfile.SYMTYPE, "not a plain file"),
])
def test_an_archive_that_would_write_outside_its_folder_or_a_link_is_refused(tmp_path, name, kind, message):
    member = tarfile.TarInfo(name)
    member.type, member.size = kind, 1 if kind == tarfile.REGTYPE else 0
    if kind == tarfile.SYMTYPE:
        member.linkname = "/etc/passwd"
    with pytest.raises(NnlabError, match=message):
        unpack_run(archive(member), tmp_path / "staging")
    assert not (tmp_path / "outside.txt").exists()


def test_ship_needs_the_ray_executor(tiny, cli):
    for command in (["train", tiny, "--ship"], ["sweep", tiny, "--grid", "seed=0,1", "--ship"]):
        result = cli(*command)
        assert result.exit_code == 2 and result.output.strip() == "error: --ship: only with --executor ray"


@pytest.mark.parametrize("cut", ["not a tar archive at all", "half"])
def test_an_archive_that_is_not_a_whole_tar_is_one_line_naming_it(tmp_path, cut):
    run = tmp_path / "store" / "tiny-20261122-000000-abcd"
    run.mkdir(parents=True)
    (run / "run.json").write_text('{"status": "completed"}' * 100)
    whole = pack_run(run)
    archive = cut.encode() if cut != "half" else whole[: len(whole) // 2]
    with pytest.raises(NnlabError) as error:
        unpack_run(archive, tmp_path / "staging", "the run folder of point 3")
    message = str(error.value)
    assert message.startswith(f"the run folder of point 3 ({len(archive):,} bytes) is not a whole tar archive (")
    assert "\n" not in message


def test_a_shipped_run_that_is_not_a_tar_fails_its_point_in_one_line_and_the_store_gets_nothing(tmp_path):
    from nnlab.sweeps.executors.units import Unit, UnitResult
    from nnlab.sweeps.executors.ray import Shipped, _receive

    store = tmp_path / "runs"
    unit = Unit(2, str(tmp_path / "spec.yaml"), (), str(store))
    result = _receive(Shipped(UnitResult(2, "completed"), b"\x00garbage" * 3), unit, "batch")
    assert result.status == "failed" and result.run_id is None
    assert result.message.startswith(f"could not unpack its run folder into {store} (the run folder of point 3 "
                                     "sent back by its node (24 bytes) is not a whole tar archive (")
    assert "\n" not in result.message
    assert [p for p in store.iterdir() if not p.name.startswith(".")] == []
