"""Submit the multi-node FFI suite with ``sbatch --wait`` and report per rank.

    python cluster/run_slurm.py                      # on a machine that can reach a Slurm cluster
    python cluster/run_slurm.py --local-cluster      # bring up a real Slurm here first, tear down after
    python cluster/run_slurm.py --local-cluster --nodes 2 --ntasks-per-node 2 --cpus-per-task 1

(``nox -s slurm -- <options>`` runs this inside the session's virtualenv.)

Steps: (1) ``cluster/slurm_test_ffi.sh`` through ``sbatch --wait``, with this
Python's PATH/VIRTUAL_ENV exported so every rank uses the same environment; each
rank's JUnit XML is parsed into a table. (2) Two ``srun`` steps running at once in
one allocation must both initialize jax.distributed (no port collision). (3) One
rank SIGKILLed mid-collective must make the job fail within seconds, with Slurm
naming the rank, and leave no task behind. (4) phasic-testkit's SLURM mode (the
suite's second step runs tests/test_slurm_testkit.py with the plugin on): a test
failing on the last rank only must be reported by rank 0 naming that rank, its
node and the coordinator, with nothing left running. (5) With nodes in their own
network namespaces: the last node's link cut mid-collective must end the job
within a bounded time, naming the rank, with nothing left running once the link
is back. (6) With ``--upstream-tests DIR`` (``nox -s slurm`` passes it): upstream
phasic's own SLURM test file, unchanged, on a 2-rank srun step, one JUnit report and
one log per rank. (7) After ``down`` the host is as it was before ``up``. Exit status is
non-zero if anything failed, timed out or a rank reported no result.

Job commands are built with ``shlex`` quoting, so a checkout path with spaces works.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import pathlib
import re
import shlex
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE / "local"))

import netns  # noqa: E402  (cluster/local is not a package)
import slurm_cluster  # noqa: E402

sys.path.insert(0, str(ROOT / "tests" / "upstream"))
import upstream_tests  # noqa: E402  (fetches and runs upstream's test files)

SCRIPT = HERE / "slurm_test_ffi.sh"
PROBE = HERE / "probe_jax.py"
RESULTS = HERE / "local" / "run" / "results"  # job outputs (gitignored); daemon state is not here
q = shlex.quote


@dataclasses.dataclass
class RankResult:
    """One rank's JUnit summary (or why there is none)."""

    rank: int
    tests: int = 0
    failures: int = 0
    errors: int = 0
    skipped: int = 0
    seconds: float = 0.0
    failed_names: list[str] = dataclasses.field(default_factory=list)
    problem: str = ""

    @property
    def ok(self) -> bool:
        # a skip inside a Slurm step means the suite did not really run there
        return not self.problem and self.tests > 0 and not (
            self.failures or self.errors or self.skipped)


def parse_junit(path: pathlib.Path, rank: int) -> RankResult:
    """Totals and failing test names from one rank's JUnit XML file."""
    res = RankResult(rank)
    if not path.exists():
        res.problem = "no JUnit report (rank killed or never started)"
        return res
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        res.problem = f"unreadable JUnit report: {exc}"
        return res
    for suite in root.iter("testsuite"):
        res.tests += int(suite.get("tests", 0))
        res.failures += int(suite.get("failures", 0))
        res.errors += int(suite.get("errors", 0))
        res.skipped += int(suite.get("skipped", 0))
        res.seconds += float(suite.get("time", 0.0))
        for case in suite.iter("testcase"):
            bad = case.find("failure")
            bad = bad if bad is not None else case.find("error")
            if bad is not None:
                # the first line of the assertion names the ranks that were off
                why = (bad.get("message") or "").splitlines()[0][:100] if bad.get("message") else ""
                res.failed_names.append(f"{case.get('name', '?')} ({why})" if why else
                                        case.get("name", "?"))
    return res


def print_table(results: list[RankResult]) -> None:
    """One line per rank: tests, passed, failed, errors, skipped, time, verdict."""
    print(f"\n{'rank':>4} {'tests':>5} {'passed':>6} {'failed':>6} {'errors':>6} "
          f"{'skipped':>7} {'time[s]':>7}  result")
    for r in results:
        passed = r.tests - r.failures - r.errors - r.skipped
        verdict = "ok" if r.ok else (r.problem or "FAILED " + "; ".join(r.failed_names))
        print(f"{r.rank:>4} {r.tests:>5} {passed:>6} {r.failures:>6} {r.errors:>6} "
              f"{r.skipped:>7} {r.seconds:>7.1f}  {verdict}")


def job_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment sbatch exports to the job: this Python first on PATH, same venv."""
    env = slurm_cluster.client_env() if slurm_cluster.CONF.exists() else dict(os.environ)
    if "SLURM_CONF" in os.environ and not slurm_cluster.is_up():
        env["SLURM_CONF"] = os.environ["SLURM_CONF"]  # the user's own cluster
    bindir = str(pathlib.Path(sys.executable).parent)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    if sys.prefix != sys.base_prefix:
        env["VIRTUAL_ENV"] = sys.prefix
    env.pop("PYTHONHOME", None)
    env.update(extra or {})
    return env


def sbatch_start(args: list[str], env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    """Start ``sbatch --wait --parsable ARGS``; return the process and the job id."""
    proc = subprocess.Popen(
        ["sbatch", "--wait", "--parsable", *args], env=env, cwd=ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    return proc, (proc.stdout.readline() if proc.stdout else "").strip().split(";")[0]


def sbatch_wait(args: list[str], env: dict[str, str], timeout: float) -> tuple[str, int, float]:
    """``sbatch --wait --parsable ARGS``; return (job id, exit status, seconds)."""
    t0 = time.monotonic()
    proc, job = sbatch_start(args, env)
    status = sbatch_finish(proc, job, env, timeout - (time.monotonic() - t0))
    return job, status, time.monotonic() - t0


def sbatch_finish(proc: subprocess.Popen, job: str, env: dict[str, str], timeout: float) -> int:
    """Wait for a started ``sbatch --wait``; its status, or 124 after cancelling on timeout."""
    try:
        _, err = proc.communicate(timeout=max(1.0, timeout))
        status = proc.returncode
        if status and not job:
            print(f"sbatch failed: {err.strip()}", file=sys.stderr)
    except subprocess.TimeoutExpired:
        print(f"job {job} still running after {timeout:.0f} s: cancelling it", file=sys.stderr)
        subprocess.run(["scancel", job], env=env, check=False)
        proc.kill()
        proc.wait()
        status = 124
    return status


def shape_args(ns: argparse.Namespace) -> list[str]:
    """sbatch options for the requested shape (they override the script's #SBATCH lines)."""
    return [
        f"--nodes={ns.nodes}", f"--ntasks={ns.nodes * ns.ntasks_per_node}",
        f"--ntasks-per-node={ns.ntasks_per_node}", f"--cpus-per-task={ns.cpus_per_task}",
        f"--time={ns.time}",
    ]


def run_suite(ns: argparse.Namespace, out: pathlib.Path) -> bool:
    """The pytest suite on every rank through cluster/slurm_test_ffi.sh; True if all passed."""
    results_dir = out / "suite"
    results_dir.mkdir(parents=True)
    env = job_env({"PHASIC_SLURM_RESULTS": str(results_dir)})
    print(f"== suite: sbatch --wait {SCRIPT.relative_to(ROOT)} "
          f"({ns.nodes} nodes x {ns.ntasks_per_node} tasks x {ns.cpus_per_task} CPUs)")
    job, status, took = sbatch_wait(
        [*shape_args(ns), f"--output={out}/suite-%j.log", str(SCRIPT)], env, ns.timeout)
    log = out / f"suite-{job}.log"
    ntasks = ns.nodes * ns.ntasks_per_node
    results = [parse_junit(results_dir / f"junit-rank{r}.xml", r) for r in range(ntasks)]
    print("FFI and SVGD suite (tests/test_slurm_multinode_ffi.py, "
          "tests/test_multi_process_svgd.py::TestSlurm; plugin off):")
    print_table(results)
    # rank 0's report of the testkit step is the merged one: it must list every test
    testkit = [parse_junit(results_dir / f"junit-testkit-rank{r}.xml", r)
               for r in range(ntasks)]
    print("\ntestkit suite (tests/test_slurm_testkit.py, plugin on, merged into rank 0):")
    print_table(testkit)
    for rank, reason in slurm_task_errors(log):
        print(f"Slurm reports rank {rank}: {reason}")
    print(f"job {job}: exit status {status}, sbatch --wait turnaround {took:.1f} s")
    ok = status == 0 and all(r.ok for r in results + testkit)
    if not ok and log.exists():
        print(f"----- {log} (last 60 lines) -----")
        print("\n".join(log.read_text(errors="replace").splitlines()[-60:]))
    return ok


def slurm_task_errors(log: pathlib.Path) -> list[tuple[int, str]]:
    """(rank, reason) from srun's ``srun: error: NODE: task R: REASON`` lines."""
    if not log.exists():
        return []
    pattern = re.compile(r"srun: error: (\S+): tasks? (\d+)(?:-\d+)?: (.+)")
    return [(int(m[2]), f"{m[3]} on {m[1]}") for m in pattern.finditer(log.read_text())]


def probe_init_mode() -> str:
    """``phasic`` when phasic_distributed is importable here (the real port plan), else ``jax``."""
    try:
        import phasic_distributed  # noqa: F401
    except ImportError:
        return "jax"
    return "phasic"


def concurrent_wrap(mode: str, out: pathlib.Path) -> str:
    """The batch script of the concurrent-steps check: two overlapping srun steps."""
    def step(k: str) -> str:
        probe = shlex.join(["srun", "--overlap", "--kill-on-bad-exit=1", "python", str(PROBE),
                            "--init", mode, "--hold", "3"])
        return f'{probe} > {q(str(out))}/concurrent-"$SLURM_JOB_ID"-step{k}.out 2>&1'
    return (f"{step('A')} & a=$!; {step('B')} & b=$!; "
            "wait $a; ra=$?; wait $b; rb=$?; echo steps: $ra $rb; exit $((ra | rb))")


def coordinator_reachable(line: str, mode: str) -> tuple[bool, str]:
    """Judge rank 0's ``COORDINATOR`` line: in netns mode the name must resolve to node1's
    bridge address and the port must listen on it (or on every address), not on loopback."""
    m = re.search(r"resolves=(\S+) listens=(\S+)", line)
    if not m:
        return False, "rank 0 printed no COORDINATOR line"
    resolved, listens = m[1], m[2].split(",")
    if mode != "netns":
        return True, f"resolves to {resolved}, listens on {','.join(listens)} (loopback mode)"
    want = netns.address(1)
    ok = resolved == want and any(a in ("::", "0.0.0.0", want) for a in listens)
    return ok, (f"resolves to {resolved} (node1 is {want}), listens on {','.join(listens)}")


def run_concurrent_steps(ns: argparse.Namespace, out: pathlib.Path, net: str) -> bool:
    """Two overlapping srun steps in one allocation both initialize and agree."""
    mode = probe_init_mode()
    print(f"== two concurrent srun steps in one allocation (init: {mode})")
    job, status, took = sbatch_wait(
        [*shape_args(ns), f"--output={out}/concurrent-%j.log", "--wrap",
         concurrent_wrap(mode, out)], job_env(), ns.timeout)
    ports = []
    ok = status == 0
    for k in "AB":
        path = out / f"concurrent-{job}-step{k}.out"
        text = path.read_text() if path.exists() else ""
        lines = [ln for ln in text.splitlines() if ln.startswith("PROBE OK")]
        coords = {m[1] for ln in lines if (m := re.search(r"coordinator=(\S+)", ln))}
        print(f"   step {k}: {len(lines)}/{ns.nodes * ns.ntasks_per_node} ranks OK, "
              f"coordinator {', '.join(sorted(coords)) or '?'}")
        ok &= len(lines) == ns.nodes * ns.ntasks_per_node
        ports.extend(coords)
        reached, why = coordinator_reachable(
            next((ln for ln in text.splitlines() if ln.startswith("COORDINATOR")), ""), net)
        print(f"   step {k}: coordinator {why} -> {'ok' if reached else 'NOT REACHABLE'}")
        ok &= reached
    if len(set(ports)) != 2:
        print(f"   expected two distinct coordinator addresses, got {ports}")
        ok = False
    print(f"   job {job}: exit status {status} in {took:.1f} s -> {'ok' if ok else 'FAILED'}")
    return ok


def run_killed_rank(ns: argparse.Namespace, out: pathlib.Path) -> bool:
    """A rank SIGKILLed while the others wait in a collective ends the job within seconds."""
    ntasks = ns.nodes * ns.ntasks_per_node
    victim = ntasks - 1
    mode = probe_init_mode()
    wrap = shlex.join(["srun", "--kill-on-bad-exit=1", "python", str(PROBE), "--init", mode,
                       "--kill-rank", str(victim), "--hold", "600"])
    print(f"== rank {victim} killed mid-collective (the others would wait 600 s)")
    job, status, took = sbatch_wait(
        [*shape_args(ns), f"--output={out}/killed-%j.log", "--wrap", wrap], job_env(),
        min(ns.timeout, 120))
    named = [r for r, _ in slurm_task_errors(out / f"killed-{job}.log")]
    leftovers = probe_processes()
    # srun's first error line names the rank that died; the rest are the ranks it then killed
    first = named[0] if named else None
    ok = status not in (0, 124) and first == victim and took < 60 and not leftovers
    print(f"   job {job}: exit status {status} after {took:.1f} s; first rank Slurm named: "
          f"{first}; leftover rank processes: {leftovers or 'none'} "
          f"-> {'ok' if ok else 'FAILED'}")
    return ok


EXPECTED_FAILURE = """
import os

import pytest

N = int(os.environ["SLURM_NTASKS"])


@pytest.mark.multiprocess(nprocs=N, timeout=60)
def test_fails_on_the_last_rank(rank, nprocs):
    assert rank != nprocs - 1, f"deliberate failure on rank {rank}"
"""


def testkit_failure_wrap(test: pathlib.Path, out: pathlib.Path) -> str:
    """The batch script of the testkit check: pytest on every task, its status to a file."""
    task = (f"python -m pytest {q(str(test))} -p no:cacheprovider -q --rootdir {q(str(ROOT))}; "
            f'echo $? > {q(str(out))}/xfail-exit-rank"$SLURM_PROCID"; exit 0')
    return f"srun --kill-on-bad-exit=1 bash -c {q(task)}"


def run_testkit_failure(ns: argparse.Namespace, out: pathlib.Path) -> bool:
    """A test failing on the last rank only: rank 0's merged report must name that rank.

    Runs phasic-testkit's SLURM mode (plugin on) under a real srun. Every task exits 0
    from bash so that srun keeps the others alive to the end; their pytest statuses
    are checked instead: 1 on rank 0 (the merged report) and on the failing rank, 0
    elsewhere. The report must name the rank, its node and the coordinator's port.
    """
    ntasks = ns.nodes * ns.ntasks_per_node
    victim = ntasks - 1
    test = out / "test_testkit_expected_failure.py"
    test.write_text(EXPECTED_FAILURE)
    wrap = testkit_failure_wrap(test, out)
    print(f"== testkit SLURM mode: a test failing on rank {victim} only")
    job, status, took = sbatch_wait(
        [*shape_args(ns), f"--output={out}/xfail-%j.log", "--wrap", wrap], job_env(),
        min(ns.timeout, 180))
    log = (out / f"xfail-{job}.log")
    text = log.read_text(errors="replace") if log.exists() else ""
    codes = {}
    for r in range(ntasks):
        path = out / f"xfail-exit-rank{r}"
        codes[r] = path.read_text().strip() if path.exists() else "none"
    expected = {r: "1" if r in (0, victim) else "0" for r in range(ntasks)}
    summary = f"failed on 1 of {ntasks} ranks: rank {victim} (failed)"
    named = (summary in text and f"deliberate failure on rank {victim}" in text
             and bool(re.search(rf"{re.escape(summary)}; coordinator \S+:\d+; ranks on hosts? ", text)))
    leftovers = pids_running(str(test))
    ok = status == 0 and codes == expected and named and not leftovers
    line = next((ln for ln in text.splitlines() if summary in ln), "(no merged summary line)")
    print(f"   rank 0 reported: {line.strip()}")
    print(f"   pytest exit status per rank: {codes} (expected {expected}); "
          f"leftover processes: {leftovers or 'none'}")
    print(f"   job {job}: exit status {status} in {took:.1f} s -> {'ok' if ok else 'FAILED'}")
    if not ok:
        print("\n".join(text.splitlines()[-60:]))
    return ok


def pids_running(marker: str) -> list[int]:
    """PIDs of processes on this machine whose command line contains `marker`."""
    pids = []
    for proc in pathlib.Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and marker.encode() in (proc / "cmdline").read_bytes():
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


def job_state(job: str, env: dict[str, str]) -> str:
    """The JobState Slurm records for a finished job ("?" when it no longer knows it)."""
    out = subprocess.run(["scontrol", "-o", "show", "job", job], env=env, check=False,
                         capture_output=True, text=True).stdout
    found = re.search(r"\bJobState=(\S+)", out)
    return found[1] if found else "?"


def probe_processes() -> list[int]:
    """PIDs of probe ranks still alive on this machine (there must be none after a job)."""
    return pids_running(str(PROBE))


HEARTBEAT = 10  # seconds: JAX declares a silent rank dead after this (its default is 100)


def _poll(what, timeout: float, interval: float = 0.2):
    """Call `what()` until it returns something truthy or `timeout` passes; return that or None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = what()
        if found:
            return found
        time.sleep(interval)
    return None


def upstream_wrap(test: pathlib.Path, out: pathlib.Path) -> str:
    """The batch script of the upstream step: pytest on every task, its own report and log."""
    per_rank = f'{q(str(out))}/upstream-%s-rank"$SLURM_PROCID"'
    junit, log, status = (per_rank % k for k in ("junit", "log", "exit"))
    cmd = shlex.join(upstream_tests.pytest_command(test, python="python"))
    # pytest's status 1 (failed tests) is recorded, not a crash: srun keeps the other
    # ranks running to the end so every rank writes its full report
    task = (f"cd {q(str(test.parent))} && {cmd} --junitxml={junit}.xml > {log}.txt 2>&1; "
            f"s=$?; echo $s > {status}; [ $s -eq 1 ] && exit 0; exit $s")
    return f"srun --kill-on-bad-exit=1 bash -c {q(task)}"


def run_upstream_suite(ns: argparse.Namespace, out: pathlib.Path) -> bool:
    """Upstream phasic's SLURM test file, unchanged, on 2 ranks on 2 nodes."""
    test = (ns.upstream_tests / upstream_tests.SLURM).resolve()
    if not test.exists():
        print(f"== upstream {test.name}: missing in {ns.upstream_tests} (run "
              f"`python tests/upstream/upstream_tests.py fetch {ns.upstream_tests}`)")
        return False
    print(f"== upstream {test.name} on 2 ranks, one per node")
    if ns.nodes < 2:
        print("   not run: needs at least 2 nodes (--nodes 2)")
        return True
    shape = ["--nodes=2", "--ntasks=2", "--ntasks-per-node=1",
             f"--cpus-per-task={ns.cpus_per_task}", f"--time={ns.time}"]
    env = job_env(upstream_tests.harness_env({}))
    job, status, took = sbatch_wait(
        [*shape, f"--output={out}/upstream-%j.log", "--wrap", upstream_wrap(test, out)],
        env, ns.timeout)
    results = [parse_junit(out / f"upstream-junit-rank{r}.xml", r) for r in range(2)]
    print_table(results)
    for rank, reason in slurm_task_errors(out / f"upstream-{job}.log"):
        print(f"Slurm reports rank {rank}: {reason}")
    ok = status == 0 and all(r.ok and r.tests == upstream_tests.EXPECTED_TESTS[test.name]
                             for r in results)
    print(f"   job {job}: exit status {status} in {took:.1f} s; per-rank logs "
          f"{out}/upstream-log-rank<R>.txt -> {'ok' if ok else 'FAILED'}")
    for r in results:
        log = out / f"upstream-log-rank{r.rank}.txt"
        if not r.ok and log.exists():
            print(f"----- rank {r.rank}: {log} (last 40 lines) -----")
            print("\n".join(log.read_text(errors="replace").splitlines()[-40:]))
    return ok


def run_link_cut(ns: argparse.Namespace, out: pathlib.Path, net: str) -> bool:
    """The last rank's node loses its link while the others wait for it in a collective.

    Expected: JAX's coordinator names the silent rank after HEARTBEAT seconds and
    the other ranks abort; Slurm declares the node failed (SlurmdTimeout) and ends
    the job, still with the link down. Then the link is restored and the node
    resumed; its slurmstepd must finish and no rank process may remain.
    """
    ntasks = ns.nodes * ns.ntasks_per_node
    victim = ntasks - 1
    print(f"== link of rank {victim}'s node cut mid-collective")
    if net != "netns":
        print("   not run: loopback mode, the nodes share one network (see the note above)")
        return True
    if ns.nodes < 2:
        print("   not run: needs at least 2 nodes")
        return True
    log = out / "linkcut.log"
    wrap = shlex.join(["srun", "--kill-on-bad-exit=1", "python", str(PROBE), "--init", "phasic",
                       "--heartbeat", str(HEARTBEAT), "--stall-rank", str(victim),
                       "--stall", "600"])
    env = job_env()
    proc, job = sbatch_start([*shape_args(ns), f"--output={log}", "--wrap", wrap], env)
    ready = _poll(lambda: log.exists() and log.read_text().count("READY rank=") == ntasks
                  and log.read_text(), 120)
    node = re.search(rf"READY rank={victim} node=node(\d+)", ready or "")
    if not node:
        print(f"   the ranks never all reached the collective: see {log}")
        sbatch_finish(proc, job, env, 1)
        return False
    k = int(node[1])
    netns.set_link(k, up=False)
    t_cut = time.monotonic()
    try:
        status = sbatch_finish(proc, job, env, 120)
        took = time.monotonic() - t_cut
        state = job_state(job, env)
        # Before the link is back the cut rank must end by itself (its JAX client aborts
        # once the coordinator stops answering); on a loaded machine that can trail the
        # job's end by a few seconds.
        tasks_left = probe_processes()
        if tasks_left:
            tasks_left = [] if _poll(lambda: not probe_processes(), 30) else probe_processes()
    finally:
        netns.set_link(k, up=True)
    t_back = time.monotonic()
    slurm_cluster.resume_node(f"node{k}")
    steps_left = _poll(lambda: not slurm_cluster.stepd_pids() and not probe_processes(), 90)
    cleared = time.monotonic() - t_back
    text = log.read_text(errors="replace")
    named = re.search(r"stopped sending heartbeats\):\s*(\d+)", text)
    node_failed = f"Node failure on node{k}" in text
    # The job failed: sbatch's status, or (when Slurm ends it for the node failure first,
    # and sbatch --wait then reports 0) the state Slurm recorded.
    failed = status != 124 and (status != 0 or state in ("FAILED", "NODE_FAIL", "CANCELLED"))
    ok = (failed and named is not None and int(named[1]) == victim
          and node_failed and not tasks_left and steps_left is not None)
    print(f"   job {job}: exit status {status} (state {state}) {took:.1f} s after the cut; "
          f"JAX named rank "
          f"{named[1] if named else '?'} as silent; Slurm reported node failure on node{k}: "
          f"{node_failed}; rank processes left at job end: {tasks_left or 'none'}; "
          f"slurmstepd/ranks left after the link is back: "
          f"{f'none ({cleared:.1f} s after)' if steps_left else slurm_cluster.stepd_pids()} "
          f"-> {'ok' if ok else 'FAILED'}")
    if not ok:
        print("\n".join(text.splitlines()[-40:]))
    return ok


def host_snapshot() -> dict[str, object]:
    """What `up` may change on the host: our links and namespaces, /etc/hosts, policy-rc.d."""
    return {
        "links and namespaces": netns.leftovers(),
        "/etc/hosts": slurm_cluster.HOSTS_FILE.read_text(),
        "policy-rc.d": os.path.lexists("/usr/sbin/policy-rc.d"),
        "slurmstepd": slurm_cluster.stepd_pids(),
    }


def check_host_restored(before: dict[str, object]) -> bool:
    """After `down`: everything in the snapshot is as before, and no daemon of ours runs."""
    after = host_snapshot()
    changed = [k for k in before if before[k] != after[k]]
    running = slurm_cluster.is_up()
    ok = not changed and not running
    print(f"== host after down: {'as before up' if not changed else 'CHANGED: ' + ', '.join(changed)}"
          f"; daemons running: {running} -> {'ok' if ok else 'FAILED'}")
    return ok


def main(argv: list[str] | None = None) -> int:
    """Parse options, optionally bring up the local cluster, run the checks, report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--local-cluster", action="store_true",
                        help="bring up a real Slurm cluster on this machine, tear it down after")
    parser.add_argument("--network", choices=slurm_cluster.NETWORK_MODES, default="auto",
                        help="--local-cluster: nodes in their own network namespaces (netns), "
                             "all on 127.0.0.1 (loopback), or netns where possible (auto)")
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--ntasks-per-node", type=int, default=1)
    parser.add_argument("--cpus-per-task", type=int, default=2)
    parser.add_argument("--time", default="00:15:00", help="Slurm time limit per job")
    parser.add_argument("--timeout", type=float, default=900.0,
                        help="seconds to wait for each job before cancelling it")
    parser.add_argument("--upstream-tests", type=pathlib.Path, default=None, metavar="DIR",
                        help="a folder holding upstream phasic's SLURM test file (from "
                             "tests/upstream/upstream_tests.py fetch DIR): run it on 2 ranks")
    parser.add_argument("--suite-only", action="store_true",
                        help="skip the concurrent-steps, killed-rank, testkit-failure and "
                             "link-cut checks")
    ns = parser.parse_args(argv)
    if min(ns.nodes, ns.ntasks_per_node, ns.cpus_per_task) < 1:
        parser.error("--nodes, --ntasks-per-node and --cpus-per-task must be at least 1")
    try:
        if not ns.local_cluster:
            return run_checks(ns, net="remote")
        # the lock is held for the whole run: a second run cannot tear our cluster down
        with slurm_cluster.locked():
            before = host_snapshot()
            try:
                took = slurm_cluster.up(slurm_cluster.ClusterShape(
                    nodes=ns.nodes, cpus=ns.ntasks_per_node * ns.cpus_per_task,
                    network=ns.network))
                net = slurm_cluster.current_mode() or "?"
                print(f"local cluster up in {took:.2f} s, network: {net}")
                status = run_checks(ns, net)
            finally:
                slurm_cluster.down()
            if not check_host_restored(before):
                status = status or 1
            return status
    except FileNotFoundError as exc:
        print(f"cannot run a Slurm command: {exc}", file=sys.stderr)
        return 2
    except slurm_cluster.ClusterError as exc:
        print(f"local cluster: {exc}", file=sys.stderr)
        return 2


def run_checks(ns: argparse.Namespace, net: str) -> int:
    """Every check against the cluster that is up; 0 if all passed, 1 if not, 2 if no cluster."""
    if net == "remote" and subprocess.run(
            ["sinfo", "-h"], env=job_env(), capture_output=True).returncode:
        print("no reachable Slurm controller (`sinfo` failed): run on a cluster login "
              "node, or pass --local-cluster to start one here", file=sys.stderr)
        return 2
    out = RESULTS / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True)
    checks = {"suite": run_suite(ns, out)}
    if ns.upstream_tests is not None:
        checks["upstream SLURM file"] = run_upstream_suite(ns, out)
    if not ns.suite_only:
        checks["concurrent steps"] = run_concurrent_steps(ns, out, net)
        checks["killed rank"] = run_killed_rank(ns, out)
        checks["testkit failure named"] = run_testkit_failure(ns, out)
        checks["link cut"] = run_link_cut(ns, out, net)
    print("\n" + "  ".join(f"{k}: {'ok' if v else 'FAILED'}" for k, v in checks.items()))
    print(f"outputs in {out}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
