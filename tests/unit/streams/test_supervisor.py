"""The pieces of a worker of several processes that need no broker: the exposition merge,
the CPU count behind ``processes = auto``, each process's environment and the release gate.
The processes themselves, on a real broker: tests/integration/test_processes.py."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from schemas.catalog import USCC_PARTITIONS
from streams.settings import MAX_PROCESSES, WorkerSettings
from streams.supervisor import Plan, ReleaseGate
from streams.supervisor.children import child_env, free_ports
from streams.supervisor.cpus import _cgroup_quota, process_count, usable_cpus
from streams.supervisor.gate import RELEASE_FD_VARIABLE, RELEASE_SHARE_VARIABLE
from streams.supervisor.merge import merge_expositions

ROOT = Path(__file__).resolve().parents[3]

FIGURE = "# HELP dfip_x_total X.\n# TYPE dfip_x_total counter\n"
HEALTH = (
    "# HELP dfip_worker_batches_total Batches committed.\n"
    "# TYPE dfip_worker_batches_total counter\n"
)


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def test_partition_series_of_two_processes_are_kept_verbatim() -> None:
    a = FIGURE + 'dfip_x_total{band="l1",partition="0"} 12345678901234567.89\n'
    b = FIGURE + 'dfip_x_total{band="l1",partition="1"} 0.10\n'
    merged = merge_expositions([a, b])
    assert merged == (
        FIGURE
        + 'dfip_x_total{band="l1",partition="0"} 12345678901234567.89\n'
        + 'dfip_x_total{band="l1",partition="1"} 0.10\n'
    )


def test_a_partition_both_export_keeps_the_larger_exact_value() -> None:
    # a float ties these two; the merge must not
    a = FIGURE + 'dfip_x_total{partition="3"} 12345678901234567.88\n'
    b = FIGURE + 'dfip_x_total{partition="3"} 12345678901234567.89\n'
    assert merge_expositions([a, b]).endswith(" 12345678901234567.89\n")
    assert merge_expositions([b, a]).endswith(" 12345678901234567.89\n")
    nan = FIGURE + 'dfip_x_total{partition="3"} NaN\n'
    assert merge_expositions([nan, a]).endswith(" 12345678901234567.88\n")
    assert merge_expositions([a, nan]).endswith(" 12345678901234567.88\n")


def test_health_metrics_add_up_with_their_exceptions() -> None:
    def one(batches: float, ready: float, restore: float, created: float) -> str:
        return (
            HEALTH
            + f"dfip_worker_batches_total {batches}\n"
            + f"dfip_worker_batches_created {created}\n"
            + "# HELP dfip_worker_ready R.\n# TYPE dfip_worker_ready gauge\n"
            + f"dfip_worker_ready {ready}\n"
            + "# HELP dfip_worker_last_restore_seconds S.\n"
            + "# TYPE dfip_worker_last_restore_seconds gauge\n"
            + f"dfip_worker_last_restore_seconds {restore}\n"
            + "# HELP dfip_build_info V.\n# TYPE dfip_build_info gauge\n"
            + 'dfip_build_info{version="1"} 1.0\n'
            + "# HELP dfip_worker_stage_seconds S.\n"
            + "# TYPE dfip_worker_stage_seconds histogram\n"
            + f'dfip_worker_stage_seconds_bucket{{le="+Inf",stage="apply"}} {batches}\n'
        )

    got = _samples(merge_expositions([one(3, 1, 0.5, 100), one(4, 0, 0.25, 50)]))
    assert got[("dfip_worker_batches_total", ())] == 7
    assert got[("dfip_worker_batches_created", ())] == 50
    assert got[("dfip_worker_ready", ())] == 0
    assert got[("dfip_worker_last_restore_seconds", ())] == 0.5
    assert got[("dfip_build_info", (("version", "1"),))] == 1
    assert got[("dfip_worker_stage_seconds_bucket", (("le", "+Inf"), ("stage", "apply")))] == 7


def test_each_family_keeps_one_header_in_first_seen_order() -> None:
    a = HEALTH + "dfip_worker_batches_total 1.0\n" + FIGURE
    b = FIGURE + 'dfip_x_total{partition="1"} 2.0\n' + HEALTH + "dfip_worker_batches_total 2.0\n"
    merged = merge_expositions([a, b])
    assert merged.count("# HELP") == 2
    assert merged.count("# TYPE") == 2
    assert merged.index("dfip_worker_batches_total") < merged.index("dfip_x_total")
    assert merge_expositions([]) == ""
    assert merge_expositions(["", "\n"]) == ""


@settings(max_examples=60, deadline=None)
@given(
    rows=st.dictionaries(
        st.tuples(st.sampled_from(["l0", "l1", "unscored"]), st.integers(0, USCC_PARTITIONS - 1)),
        st.integers(0, 10**17).map(lambda fen: f"{fen // 100}.{fen % 100:02d}"),
        max_size=30,
    ),
    owners=st.lists(st.integers(0, 3), min_size=USCC_PARTITIONS, max_size=USCC_PARTITIONS),
    batches=st.lists(st.integers(0, 10**6), min_size=4, max_size=4),
)
def test_partitions_split_among_processes_merge_back_to_the_whole(
    rows: dict[tuple[str, int], str], owners: list[int], batches: list[int]
) -> None:
    """Any split of the partitions among up to 4 processes: the merge has every figure line
    of the whole exactly as written, and the health counters summed."""
    texts = []
    for proc in range(4):
        lines = [
            f'dfip_x_total{{band="{band}",partition="{p}"}} {value}\n'
            for (band, p), value in sorted(rows.items())
            if owners[p] == proc
        ]
        texts.append(
            FIGURE + "".join(lines) + HEALTH + f"dfip_worker_batches_total {batches[proc]}.0\n"
        )
    merged = merge_expositions(texts)
    figure_lines = sorted(line for line in merged.splitlines() if line.startswith("dfip_x_total"))
    want = sorted(
        f'dfip_x_total{{band="{band}",partition="{p}"}} {value}'
        for (band, p), value in rows.items()
    )
    assert figure_lines == want
    assert _samples(merged)[("dfip_worker_batches_total", ())] == sum(batches)


def test_cgroup_quota_v2_and_v1(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert _cgroup_quota(tmp_path) is None
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert _cgroup_quota(tmp_path) == 1.5
    assert usable_cpus(tmp_path) == min(len(os.sched_getaffinity(0)), 2)
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert _cgroup_quota(v1) is None
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("50000\n")
    assert _cgroup_quota(v1) == 0.5
    assert usable_cpus(v1) == 1  # half a CPU is still one process
    assert _cgroup_quota(tmp_path / "none") is None


def test_processes_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert MAX_PROCESSES == USCC_PARTITIONS
    assert WorkerSettings().processes == "auto"
    assert 1 <= process_count(WorkerSettings()) <= MAX_PROCESSES
    monkeypatch.setenv("DFIP_WORKER_PROCESSES", "3")
    assert process_count(WorkerSettings()) == 3
    for given_, want in (("AUTO", "auto"), (" 2 ", 2)):
        monkeypatch.setenv("DFIP_WORKER_PROCESSES", given_)
        assert WorkerSettings().processes == want
    for bad in ("0", "13", "two", "", "1.5", "-1", "true"):
        monkeypatch.setenv("DFIP_WORKER_PROCESSES", bad)
        with pytest.raises(ValidationError) as caught:
            WorkerSettings()
        # one message naming what is allowed, not one per branch of the type
        (error,) = caught.value.errors()
        assert "must be auto or a whole number from 1 to 12" in error["msg"]


def test_each_process_gets_its_port_identity_folder_and_gate() -> None:
    s = WorkerSettings(worker_id="w7", web_port=7000, data_dir=Path("/var/dfip"))
    plan = Plan.from_json(Plan.of(s, 2).to_json())  # as `dfip worker` hands it over
    assert plan == Plan.of(s, 2)
    assert (plan.processes, plan.partitions) == (2, USCC_PARTITIONS)
    env = child_env({"PATH": "/bin", "DFIP_WORKER_PROCESSES": "auto"}, plan, 1, 7002, 9)
    assert env["PATH"] == "/bin"
    assert env["DFIP_WORKER_PROCESSES"] == "1"
    assert env["DFIP_WORKER_WEB_PORT"] == "7002"
    assert env["DFIP_WORKER_WORKER_ID"] == "w7-p1"
    assert env["DFIP_WORKER_DATA_DIR"] == "/var/dfip/p1"
    assert env[RELEASE_FD_VARIABLE] == "9"
    assert env[RELEASE_SHARE_VARIABLE] == "6"  # 12 partitions over 2 processes
    assert child_env({}, Plan.of(s, 5), 0, 7002, 9)[RELEASE_SHARE_VARIABLE] == "3"  # rounded up
    assert "DFIP_WORKER_ADVERTISED_URL" not in env  # derived from its own web_port
    for url, want in (
        ("http://worker-3.dfip:6066/", "http://worker-3.dfip:7002/"),
        ("https://[fd00::5]:6066", "https://[fd00::5]:7002"),
        ("http://worker-3", "http://worker-3:7002"),
    ):
        s2 = WorkerSettings(worker_id="w7", web_port=7000, advertised_url=url)
        plan2 = Plan.from_json(Plan.of(s2, 2).to_json())
        assert child_env({}, plan2, 1, 7002, 9)["DFIP_WORKER_ADVERTISED_URL"] == want


def test_process_ports_are_free_and_distinct() -> None:
    import socket

    ports = free_ports("127.0.0.1", 3)
    assert len(set(ports)) == 3
    for port in ports:  # free: a process can bind it
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))
    assert len(free_ports("0.0.0.0", 2)) == 2


def test_gate_without_a_supervisor_is_open() -> None:
    assert ReleaseGate({}).released
    assert ReleaseGate({RELEASE_FD_VARIABLE: "x"}).released


@pytest.mark.parametrize("how", ["write", "close"])
def test_gate_opens_when_the_supervisor_writes_or_goes_away(how: str) -> None:
    read_fd, write_fd = os.pipe()
    gate = ReleaseGate({RELEASE_FD_VARIABLE: str(read_fd)})
    assert not gate.released

    async def scenario() -> None:
        gate.watch()
        gate.watch()  # idempotent
        await asyncio.sleep(0.01)
        assert not gate.released
        if how == "write":
            os.write(write_fd, b"1")
        else:
            os.close(write_fd)
        for _ in range(100):
            if gate.released:
                break
            await asyncio.sleep(0.01)

    try:
        asyncio.run(scenario())
    finally:
        if how == "write":
            os.close(write_fd)
    assert gate.released
    with pytest.raises(OSError):
        os.fstat(read_fd)  # the gate closed its end


def test_the_supervisor_loads_neither_pydantic_nor_aiohttp() -> None:
    """Its memory is the point (streams/supervisor/http.py, plan.py): what it imports."""
    import subprocess
    import sys

    heavy = ("pydantic", "aiohttp", "faust", "typer", "aiokafka", "prometheus_client")
    code = (
        "import sys, streams.supervisor.__main__ as m; "
        f"print(sorted(n for n in {heavy!r} if n in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "[]"
