"""RayExecutor on a real local Ray instance (2 CPUs, started once for the module): the same numbers as the
local executor, a worker that dies once is retried into exactly one run folder, a worker that always dies
fails its unit while the others complete, Ctrl-C ends running units as interrupted and never starts the
rest, and `compare --sweep` reads what the workers wrote."""

from __future__ import annotations

import _thread
import functools
import ipaddress
import json
import os
import sys
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import binary_table, run_folders, tiny_spec, write_spec
from nnlab import runstore
from nnlab.cli import app
from nnlab.errors import NnlabError
from nnlab.sweeps.executors.local import LocalExecutor
from nnlab.sweeps.executors.units import Unit, UnitResult, run_unit
from nnlab.sweeps.grid import plan_sweep

ray = pytest.importorskip("ray")

from nnlab.sweeps.executors.ray import (ATTEMPTS_DIR, NOT_STARTED, RAY_MISSING, STOPPED, TIMEOUT_ENV,  # noqa: E402
                                 RayExecutor, start_local)

GRID = ["train.optimizer.lr=1e-3,3e-2", "models.mlp.hidden=[8],[4]"]


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    # The crash wrappers below run in Ray workers, which cannot import this test module: send them by value.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    start_local(ray, 2)  # as RayExecutor starts one: on 127.0.0.1 only
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def spec(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("spec")
    binary_table(n=160).to_csv(folder / "data.csv", index=False)
    return write_spec(folder, tiny_spec(train={"epochs": 2, "batch_size": 32}))


# --- a local instance listens on 127.0.0.1 only ------------------------------------------------------------

def listening_sockets(pids: set[int]) -> list[str]:
    """`address:port` of every TCP socket in LISTEN that one of `pids` holds (from /proc)."""
    inodes = set()
    for pid in pids:
        try:
            links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        except OSError:
            continue  # gone, or not ours to read
        inodes |= {link[8:-1] for link in links if link.startswith("socket:[")}
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                address, port = fields[1].split(":")
                raw = bytes.fromhex(address)
                words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))  # little-endian words
                ip = ipaddress.ip_address(words)
                ip = ip.ipv4_mapped or ip if isinstance(ip, ipaddress.IPv6Address) else ip
                found.append(f"{ip}:{int(port, 16)}")
    return found


def descendants(pid: int) -> set[int]:
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                parents[int(entry)] = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    family, grew = {pid}, True
    while grew:
        more = {child for child, parent in parents.items() if parent in family} - family
        family |= more
        grew = bool(more)
    return family


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads the sockets from /proc")
def test_a_local_instance_listens_on_the_loopback_only():
    ray.get(ray.remote(num_cpus=1)(import_torch).remote())  # a worker runs too
    sockets = listening_sockets(descendants(os.getpid()))
    assert ray.util.get_node_ip_address() == "127.0.0.1"
    assert len(sockets) >= 4, sockets  # GCS, raylet (two), a worker, this driver
    assert [s for s in sockets if not s.startswith("127.0.0.1:")] == [], sockets


def test_starting_a_local_instance_keeps_the_sigterm_handler_in_place():
    """ray.init sets a SIGTERM handler that exits at once; nnlab.core.interrupts' (the running points end as
    interrupted, the sweep prints what it has, exit 130) must stay."""
    import signal
    import types

    def init(**options):
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(15))  # what Ray's does
        init.options = options

    ours = lambda *_: None  # noqa: E731
    before = signal.signal(signal.SIGTERM, ours)
    try:
        start_local(types.SimpleNamespace(init=init), 3)
        assert signal.getsignal(signal.SIGTERM) is ours
    finally:
        signal.signal(signal.SIGTERM, before)
    assert init.options["address"] == "local" and init.options["_node_ip_address"] == "127.0.0.1"
    assert init.options["num_cpus"] == 3


# --- no answer, no room: a one-line error after $NNLAB_RAY_TIMEOUT ---------------------------------------

@pytest.fixture
def hanging_init(monkeypatch):
    """ray.init waits for ever, as it does at an address where nothing answers (Ray retries without end);
    Ray counts as not started, so RayExecutor calls it. No traffic: the real address is never tried."""
    release, calls = threading.Event(), []

    def init(*args, **kwargs):
        calls.append(kwargs.get("address"))
        release.wait(60)

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", init)
    monkeypatch.setenv(TIMEOUT_ENV, "0.2")
    yield calls
    release.set()


def test_an_address_where_nothing_answers_is_one_line_after_the_timeout(spec, tmp_path, hanging_init, cli):
    result = cli("sweep", spec, "--grid", "seed=0,1", "--executor", "ray", "--address", "127.0.0.1:1",
                 "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 2, result.output
    assert result.stderr.strip().splitlines() == [
        "error: --address 127.0.0.1:1: no Ray cluster answered within 0.2 s (wait longer with "
        "$NNLAB_RAY_TIMEOUT=SECONDS)"]
    assert hanging_init == ["127.0.0.1:1"]
    assert not (tmp_path / "runs").exists()


def test_an_address_ray_refuses_is_one_line_naming_it(spec, tmp_path, monkeypatch, cli):
    def init(*args, **kwargs):
        raise ConnectionError("Could not find any running Ray instance.\nPlease start one")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", init)
    result = cli("sweep", spec, "--grid", "seed=0,1", "--executor", "ray", "--address", "auto",
                 "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "error: --address auto: cannot join Ray (Could not find any running Ray instance.)"]


def one_node(**resources) -> list[dict]:
    return [{"Alive": True, "Resources": {"memory": 1e9, **resources}},
            {"Alive": False, "Resources": {"CPU": 64.0, "GPU": 8.0}}]  # a dead node's GPUs are no room


@pytest.mark.parametrize("args, message", [
    (["--gpus-per-trial", "0.5"], "--gpus-per-trial 0.5: no node of the Ray cluster has room for a point after "
                                  "0.2 s (1 node, the largest with 2 CPUs and 0 GPUs; "),
    (["--cpus-per-trial", "3"], "--cpus-per-trial 3: no node of the Ray cluster has room for a point after "
                                "0.2 s (1 node, the largest with 2 CPUs and 0 GPUs; "),
])
def test_a_point_no_node_has_room_for_is_one_line_after_the_timeout(spec, tmp_path, monkeypatch, cli, args,
                                                                    message):
    monkeypatch.setattr(ray, "nodes", lambda: one_node(CPU=2.0))  # whatever this machine has
    monkeypatch.setenv(TIMEOUT_ENV, "0.2")
    result = cli("sweep", spec, "--grid", "seed=0,1", "--executor", "ray", *args, "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.strip().splitlines()
    assert line == f"error: {message}wait longer with $NNLAB_RAY_TIMEOUT=SECONDS)"
    assert ray.is_initialized()  # the module's instance, used as it is and left running
    assert not (tmp_path / "runs").exists()


def test_a_node_that_joins_while_waiting_is_room_enough(monkeypatch):
    answers = iter([one_node(CPU=2.0), one_node(CPU=2.0, GPU=1.0)])  # an autoscaler adds a GPU node
    monkeypatch.setattr(ray, "nodes", lambda: next(answers))
    RayExecutor(gpus_per_trial=0.5)._wait_for_room(ray, 30)
    with pytest.raises(StopIteration):
        next(answers)  # it asked again, and stopped asking once the room was there


@pytest.mark.parametrize("value", ["soon", "0", "-1", "nan"])
def test_a_bad_timeout_is_one_line_naming_the_variable(monkeypatch, value):
    monkeypatch.setenv(TIMEOUT_ENV, value)
    with pytest.raises(NnlabError) as error:
        RayExecutor().run([])
    assert str(error.value) == f"$NNLAB_RAY_TIMEOUT: seconds to wait for Ray, a number above 0; got {value!r}"


# --- the same numbers both ways ----------------------------------------------------------------------------

def scores(result: UnitResult) -> dict:
    summary = runstore.read_run(Path(result.path)).summary
    return {name: (model.status, model.val, model.test) for name, model in summary.models.items()}


def import_torch() -> None:
    import torch  # noqa: F401  (a Ray worker's first unit would otherwise pay for it)


@pytest.fixture(scope="module")
def swept(spec, tmp_path_factory):
    """One 4-point sweep plan trained both ways, into two stores."""
    plan = plan_sweep(spec, GRID)
    local_store, ray_store = tmp_path_factory.mktemp("local"), tmp_path_factory.mktemp("ray")
    warming = [ray.remote(num_cpus=1)(import_torch).remote() for _ in range(2)]  # while the local run trains
    local = {r.index: r for r in LocalExecutor(1).run(plan.units(local_store))}
    ray.get(warming)
    on_ray = {r.index: r for r in RayExecutor().run(plan.units(ray_store))}
    return plan, local, on_ray, ray_store


def test_a_sweep_on_ray_gives_the_numbers_of_the_local_executor(swept):
    plan, local, on_ray, ray_store = swept
    assert sorted(on_ray) == sorted(local) == [0, 1, 2, 3]
    assert {r.status for r in on_ray.values()} == {"completed"}, on_ray
    for index in local:
        assert scores(on_ray[index]) == scores(local[index])  # exactly: same seeds, same CPU arithmetic
    val_losses = {scores(on_ray[i])["mlp"][1]["loss"] for i in on_ray}
    assert len(val_losses) == 4  # the points differ from each other: equal numbers are not one point trained 4 times
    folders = run_folders(ray_store)
    assert sorted(f.name for f in folders) == sorted(r.run_id for r in on_ray.values())
    assert not (ray_store / ATTEMPTS_DIR).exists()
    for index, result in on_ray.items():
        run = runstore.read_run(Path(result.path))
        assert (run.status, run.meta.sweep) == ("completed", plan.id)
        assert run.note == ", ".join(plan.points[index].overrides)


def test_compare_sweep_reads_the_runs_the_ray_workers_wrote(swept):
    plan, _, on_ray, ray_store = swept
    result = CliRunner().invoke(app, ["compare", "--sweep", plan.id, "--format", "json", "--metric", "loss",
                                      "--runs-dir", str(ray_store)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = [row for row in json.loads(result.stdout) if row["model"] == "mlp"]
    assert len(rows) == 4
    for row in rows:
        result_of_run = next(r for r in on_ray.values() if r.run_id == row["run"])
        status, val, test = scores(result_of_run)["mlp"]
        assert row["val_loss"] == pytest.approx(val["loss"], rel=1e-6)  # JSON output keeps 7 digits
        assert row["test_loss"] == pytest.approx(test["loss"], rel=1e-6)


# --- Ctrl-C --------------------------------------------------------------------------------------------------

def _interrupt_when_running(staging: Path, runs: int) -> None:
    """Ctrl-C in the driver once `runs` run folders exist in the workers' staging folders."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(list(staging.glob("*/*/*/run.json"))) < runs:
        time.sleep(0.05)
    _thread.interrupt_main()


def test_ctrl_c_cancels_the_rest_and_the_running_units_end_interrupted(tmp_path, swept):
    # after the sweep (`swept`): its workers are warm, so the two long units start at once
    binary_table(n=160).to_csv(tmp_path / "data.csv", index=False)
    long = write_spec(tmp_path, tiny_spec(train={"epochs": 5000, "batch_size": 32, "early_stopping": None}))
    store = tmp_path / "runs"
    units = plan_sweep(long, ["train.optimizer.lr=1e-3,1e-2,3e-2"]).units(store)
    stream = RayExecutor().run(units)  # 2 CPUs: two units run, the third waits
    threading.Thread(target=_interrupt_when_running, args=(store / ATTEMPTS_DIR, 2), daemon=True).start()
    results = []
    with pytest.raises(KeyboardInterrupt):
        for result in stream:
            results.append(result)
    assert sorted(r.index for r in results) == [0, 1, 2] and {r.status for r in results} == {"interrupted"}
    running = [r for r in results if r.run_id]
    assert len(running) == 2 and {r.message for r in running} == {STOPPED}
    assert [r.message for r in results if not r.run_id] == [NOT_STARTED]
    assert sorted(f.name for f in run_folders(store)) == sorted(r.run_id for r in running)
    assert {runstore.read_run(Path(r.path)).status for r in running} == {"interrupted"}


def test_a_spec_a_node_cannot_read_fails_its_unit_and_says_the_store_must_be_shared(tmp_path, swept):
    unit = Unit(0, str(tmp_path / "elsewhere" / "spec.yaml"), (), str(tmp_path / "runs"))
    [result] = RayExecutor().run([unit])
    assert result.status == "failed" and result.run_id is None
    assert result.message.startswith(f"{tmp_path}/elsewhere/spec.yaml: not found on node ")
    assert result.message.endswith("with Ray, the spec, its data and --runs-dir must be on a file system every "
                                   "node shares, or add --ship")


def test_an_error_in_the_attempt_itself_fails_its_unit_with_its_own_reason_not_as_a_dead_worker(tmp_path, spec, swept):
    store = tmp_path / "runs"
    store.write_text("a file where the store should be")
    [result] = RayExecutor(max_retries=3).run(plan_sweep(spec, ["train.optimizer.lr=1e-3"]).units(store))
    assert result.status == "failed" and result.run_id is None
    assert result.message.startswith("NotADirectoryError: [Errno 20] Not a directory"), result.message


# --- --ship: no shared file system -------------------------------------------------------------------------

def record_paths(marker_dir: Path, unit: Unit) -> UnitResult:
    """Runs in the worker: note the spec and store the unit trained from, then train it."""
    (marker_dir / f"{unit.index}.json").write_text(json.dumps([unit.spec_path, unit.store]))
    return run_unit(unit)


def test_shipped_units_train_from_the_files_sent_and_bring_their_run_folders_back(swept, spec, tmp_path):
    import shutil
    import tempfile

    plan, local, _, _ = swept
    source = tmp_path / "source"
    source.mkdir()
    shutil.copy(spec, source / "spec.yaml")
    shutil.copy(spec.parent / "data.csv", source / "data.csv")
    store, markers = tmp_path / "runs", tmp_path / "markers"
    markers.mkdir()
    units = plan_sweep(source / "spec.yaml", GRID).units(store)
    stream = RayExecutor(ship=True, train_unit=functools.partial(record_paths, markers)).run(units)
    shutil.rmtree(source)  # sent already: from here on no worker could read the originals
    shipped = {r.index: r for r in stream}
    assert {r.status for r in shipped.values()} == {"completed"}, [r.message for r in shipped.values()]
    for index in local:
        assert scores(shipped[index]) == scores(local[index])  # the same numbers as from the shared disk
        assert Path(shipped[index].path).parent == store
        spec_used, store_used = json.loads((markers / f"{index}.json").read_text())
        assert Path(spec_used).parent.parent == Path(tempfile.gettempdir()) / "nnlab-ray" / "bundles"
        assert not Path(store_used).exists()  # the worker's own store, cleared once the run was sent
    assert sorted(f.name for f in run_folders(store)) == sorted(r.run_id for r in shipped.values())
    assert not (store / ATTEMPTS_DIR).exists()
    run = runstore.read_run(Path(shipped[0].path))
    assert run.spec["data"]["path"] == "data.csv"  # the spec as written, not the worker's copy


def test_train_ship_runs_on_ray_without_a_shared_file_system(spec, tmp_path, cli):
    result = cli("train", spec, "--executor", "ray", "--ship", "--runs-dir", tmp_path / "runs", store=False)
    assert result.exit_code == 0, result.output
    (run,) = runstore.list_runs(tmp_path / "runs")[0]
    assert run.status == "completed" and run.summary.models["mlp"].status == "completed"


# --- workers that die: wrappers around run_unit, sent to the workers by value ------------------------------

def die_mid_run(unit: Unit, marker: Path) -> None:
    """The worker process dies once the run folder exists and the baseline has trained, before its result is
    written; the marker records the half-done run folder it leaves behind in its staging folder."""
    from nnlab.runstore import writer

    def die(*args, **kwargs):
        marker.write_text(json.dumps([p.name for p in Path(unit.store).iterdir()]))
        os._exit(1)

    writer.RunWriter.write_summary = die


def crash_once(marker: Path, index: int, unit: Unit) -> UnitResult:
    if unit.index == index and not marker.exists():
        die_mid_run(unit, marker)
    return run_unit(unit)


def crash_always(index: int, marker: Path, unit: Unit) -> UnitResult:
    if unit.index == index:
        die_mid_run(unit, marker)
    return run_unit(unit)


def crash_unit_1_once_unit_2_always(once: Path, always: Path, unit: Unit) -> UnitResult:
    return crash_once(once, 1, unit) if unit.index == 1 else crash_always(2, always, unit)


# --- workers that die -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def faults(spec, tmp_path_factory):
    """Three units, one retry each: unit 0 trains, unit 1's worker dies once, unit 2's worker always dies."""
    folder = tmp_path_factory.mktemp("faults")
    store, once, always = folder / "runs", folder / "once.json", folder / "always.json"
    units = plan_sweep(spec, ["train.optimizer.lr=1e-3,1e-2,3e-2"]).units(store)
    work = functools.partial(crash_unit_1_once_unit_2_always, once, always)
    results = {r.index: r for r in RayExecutor(max_retries=1, train_unit=work).run(units)}
    return results, store, once, always


def test_a_worker_that_dies_once_is_retried_into_exactly_one_run_folder(faults):
    results, store, once, _ = faults
    dead = json.loads(once.read_text())
    assert len(dead) == 1 and dead[0].startswith("tiny-")  # it died with a half-written run folder
    assert results[1].status == "completed", results[1]
    run = runstore.read_run(Path(results[1].path))
    assert run.status == "completed" and set(run.summary.models) == {"baseline", "mlp"}
    assert dead[0] not in {f.name for f in run_folders(store)}  # the dead attempt's folder is gone


def test_a_worker_that_always_dies_fails_its_unit_and_the_others_complete(faults):
    results, store, _, always = faults
    assert results[2].status == "failed" and results[2].run_id is None
    assert results[2].message.startswith("the worker died on each of 2 attempts (")
    assert results[0].status == "completed"
    assert always.exists()  # it did die mid-run
    assert sorted(f.name for f in run_folders(store)) == sorted([results[0].run_id, results[1].run_id])
    assert not (store / ATTEMPTS_DIR).exists()  # nothing half-written left, staged or not


# --- without Ray --------------------------------------------------------------------------------------------

def test_a_shipped_unit_whose_worker_dies_once_is_retried_into_exactly_one_run_folder(spec, tmp_path):
    import tempfile

    store, once = tmp_path / "runs", tmp_path / "once.json"
    node_stores = Path(tempfile.gettempdir()) / "nnlab-ray" / "stores"
    before = set(node_stores.iterdir()) if node_stores.exists() else set()
    units = plan_sweep(spec, ["train.optimizer.lr=1e-3,1e-2"]).units(store)
    work = functools.partial(crash_once, once, 1)
    results = {r.index: r for r in RayExecutor(max_retries=1, ship=True, train_unit=work).run(units)}
    assert [results[i].status for i in (0, 1)] == ["completed", "completed"], results
    assert len(json.loads(once.read_text())) == 1  # it did die, with a half-written run folder on its node
    assert sorted(f.name for f in run_folders(store)) == sorted(r.run_id for r in results.values())
    assert not (store / ATTEMPTS_DIR).exists()
    assert set(node_stores.iterdir()) <= before  # the dead attempt's store on the node is gone too


def test_without_ray_the_executor_says_how_to_get_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(NnlabError) as error:
        RayExecutor().run([])
    assert str(error.value) == RAY_MISSING == "--executor ray needs Ray: pip install -e '.[ray]' in the nnlab checkout"


def test_train_with_repeats_runs_as_one_task_on_ray_with_the_local_numbers(spec, tmp_path, cli):
    """`nnlab train --executor ray` (Ray already running in this process is used as it is)."""
    local, on_ray = tmp_path / "local", tmp_path / "ray"
    assert cli("train", spec, "--repeats", "2", "--runs-dir", local, store=False).exit_code == 0
    result = cli("train", spec, "--repeats", "2", "--executor", "ray", "--runs-dir", on_ray, store=False)
    assert result.exit_code == 0, result.output
    assert "mean ± sd over 2 members" in result.stdout and f"run: {on_ray}" in result.stdout
    (a,), (b,) = runstore.list_runs(local)[0], runstore.list_runs(on_ray)[0]
    assert {n: (m.val, m.test, m.val_sd) for n, m in a.summary.models.items()} == \
           {n: (m.val, m.test, m.val_sd) for n, m in b.summary.models.items()}
    assert b.summary.models["mlp"].repeats == 2
