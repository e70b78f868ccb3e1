"""Run one command and account for its whole process tree: wall time, CPU, memory, other load on the machine.

Why not only ``/usr/bin/time -v``: it reports what ``wait4`` reports, i.e. the command and the descendants that
were *waited for* inside its tree. auditor's detection workers may be children of a multiprocessing forkserver
that the main process never waits for; when the main process exits the forkserver is orphaned (reparented to init)
and its CPU time, and its workers', vanish from the count (``time -v`` says ~56 % CPU for a scan that keeps both
cores busy). So:

* the harness makes itself a *child subreaper* (``prctl(PR_SET_CHILD_SUBREAPER)``): orphans of the measured tree
  are reparented to the harness instead of init, and the harness reaps them all. CPU = the growth of the harness's
  ``RUSAGE_CHILDREN`` (user + system) over the run, which then covers every process of the tree, short-lived
  ones included. Exact, not sampled.
* memory is sampled every 50 ms by walking the tree (``/proc/PID/task/*/children``): the peak of the *sum* of RSS
  over the live processes, and of the sum of PSS (``/proc/PID/smaps_rollup``, every 4th sample after the first
  ten: shared pages of forked workers counted once), and the largest single process. ``ru_maxrss`` is that of
  one process, never the sum, so it is not used.
* per process role (auditor: main, worker — a fork of main, or a forkserver's child —, forkserver; git, grep,
  ...) the sampler keeps the CPU ticks, so the CPU utilisation of the detection window (while pool workers are
  alive) is known per role.
* noise: ``/proc/stat`` busy ticks of the whole machine over the run minus the tree's own CPU = CPU used by
  *other* processes meanwhile (other engineers' tests), in % of one core; the 1-min load average before.
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal
import subprocess
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

HZ = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


SUBREAPER = become_subreaper()


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def machine_busy_ticks() -> int:
    f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    # user nice system idle iowait irq softirq steal (guest* are already inside user/nice)
    return f[0] + f[1] + f[2] + f[5] + f[6] + (f[7] if len(f) > 7 else 0)


def _read(path: str) -> str | None:
    try:
        with open(path, "rb") as fh:
            return fh.read().decode("utf-8", "replace")
    except OSError:
        return None


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        text = _read(f"/proc/{pid}/task/{tid}/children")
        if text:
            out.extend(int(x) for x in text.split())
    return out


@dataclass
class Proc:
    pid: int
    ppid: int
    comm: str
    role: str
    first: float
    last: float
    ticks: int = 0  # utime + stime, last sample
    ticks_at: dict[str, int] = field(default_factory=dict)
    rss_max: int = 0


@dataclass
class Measurement:
    cmd: str
    rc: int
    wall: float
    cpu: float  # seconds, whole tree (rusage of the subreaper), or the sampled sum if not a subreaper
    cpu_sampled: float
    peak_rss: int  # bytes, sum over the tree at the worst sample
    peak_pss: int
    max_proc_rss: int
    peak_rss_by_role: dict[str, int]  # RSS per role at the sample of the peak sum
    peak_pss_anon: int  # anonymous (heap) part of the PSS at the PSS peak; the rest is mapped files (packs)
    load_before: float
    other_cpu_pct: float  # CPU of other processes on the machine during the run, % of one core
    roles: dict[str, float]  # role → CPU seconds (sampled)
    detection: dict[str, float] | None  # window while pool workers were alive: seconds, cpu % total and per role
    # (t, cumulative tree CPU s, tree RSS bytes, workers alive, cumulative CPU s of main, of workers, of the
    # workers' own children)
    timeline: list[tuple[float, float, int, int, float, float, float]]
    timed_out: bool = False
    peak_anon: int = 0  # the peak of the tree's summed Pss_Anon (issue 16's measure: heaps, not mapped packs)
    peak_anon_by_role: dict[str, int] = field(default_factory=dict)  # Pss_Anon per role at that peak
    max_anon_by_role: dict[str, int] = field(default_factory=dict)  # each role's own peak (summed over its procs)

    @property
    def cpu_pct(self) -> float:
        return 100.0 * self.cpu / self.wall if self.wall else 0.0

    def to_dict(self, timeline: bool = False) -> dict:
        d = asdict(self)
        d["cpu_pct"] = self.cpu_pct
        if not timeline:
            d.pop("timeline")
        return d


class _Sampler(threading.Thread):
    def __init__(self, root: int, t0: float, interval: float = 0.05) -> None:
        super().__init__(daemon=True, name="bench-sampler")
        self.root, self.t0, self.interval = root, t0, interval
        self.me = os.getpid()
        self.stop = threading.Event()
        self.procs: dict[tuple[int, int], Proc] = {}
        self.forkservers: set[int] = set()
        self._root_cmdline = ""
        self.roles: dict[int, str] = {}  # live pid → role
        self.peak_rss = self.peak_pss = self.peak_pss_anon = 0
        self.peak_rss_by_role: dict[str, int] = {}
        self.peak_anon = 0
        self.peak_anon_by_role: dict[str, int] = {}
        self.max_anon_by_role: dict[str, int] = {}
        self.timeline: list[tuple[float, float, int, int, float, float, float]] = []
        self.n = 0

    def root_cmdline(self) -> str:
        if not self._root_cmdline:
            self._root_cmdline = (_read(f"/proc/{self.root}/cmdline") or "").replace("\0", " ")
        return self._root_cmdline

    def _role(self, pid: int, ppid: int, comm: str) -> str:
        if pid == self.root:
            return "main"
        cmdline = (_read(f"/proc/{pid}/cmdline") or "").replace("\0", " ")
        if ppid in self.forkservers:
            return "worker"
        if ppid == self.root and cmdline and cmdline == self.root_cmdline():
            return "worker"  # a fork of the scan itself (auditor's detection workers, ``pool.prefork``)
        if self.roles.get(ppid, "").startswith("worker"):
            return f"worker:{comm}"  # e.g. a git cat-file a worker reads blobs through
        if "multiprocessing.forkserver" in cmdline:
            self.forkservers.add(pid)
            return "forkserver"
        if "multiprocessing.resource_tracker" in cmdline:
            return "resource_tracker"
        return comm

    def sample(self) -> None:
        now = time.perf_counter() - self.t0
        self.n += 1
        want_pss = self.n <= 10 or self.n % 4 == 1  # every sample of a short run
        # the tree: everything below the harness (the root, and orphans reparented to the harness)
        stack, seen = _children(self.me), []
        while stack:
            pid = stack.pop()
            seen.append(pid)
            stack.extend(_children(pid))
        rss_sum = pss_sum = pss_anon = 0
        workers = 0
        by_role: dict[str, int] = {}
        anon_by_role: dict[str, int] = {}
        for pid in seen:
            stat = _read(f"/proc/{pid}/stat")
            if not stat:
                continue
            rp = stat.rfind(")")
            comm = stat[stat.find("(") + 1:rp]
            f = stat[rp + 2:].split()
            ppid, ticks, start = int(f[1]), int(f[11]) + int(f[12]), int(f[19])
            key = (pid, start)
            p = self.procs.get(key)
            if p is None:
                p = self.procs[key] = Proc(pid, ppid, comm, self._role(pid, ppid, comm), now, now)
            elif p.comm != comm:  # exec'd since first seen (bash → git)
                p.comm, p.role = comm, self._role(pid, ppid, comm)
            self.roles[pid] = p.role
            p.last, p.ticks = now, ticks
            statm = _read(f"/proc/{pid}/statm")
            rss = int(statm.split()[1]) * PAGE if statm else 0
            p.rss_max = max(p.rss_max, rss)
            rss_sum += rss
            by_role[p.role] = by_role.get(p.role, 0) + rss
            if p.role == "worker":
                workers += 1
            if want_pss:
                roll = _read(f"/proc/{pid}/smaps_rollup") or ""
                for line in roll.splitlines():
                    if line.startswith("Pss:"):
                        pss_sum += int(line.split()[1]) * 1024
                    elif line.startswith("Pss_Anon:"):
                        pss_anon += int(line.split()[1]) * 1024
                        role = "git" if p.role in ("git", "git:log") else p.role
                        anon_by_role[role] = anon_by_role.get(role, 0) + int(line.split()[1]) * 1024
        if rss_sum > self.peak_rss:
            self.peak_rss, self.peak_rss_by_role = rss_sum, by_role
        if want_pss and pss_sum > self.peak_pss:
            self.peak_pss, self.peak_pss_anon = pss_sum, pss_anon
        if want_pss and pss_anon > self.peak_anon:
            self.peak_anon, self.peak_anon_by_role = pss_anon, anon_by_role
        for role, n in anon_by_role.items():
            self.max_anon_by_role[role] = max(self.max_anon_by_role.get(role, 0), n)
        cum = main = work = wkids = 0
        for p in self.procs.values():
            cum += p.ticks
            if p.role == "main":
                main += p.ticks
            elif p.role == "worker":
                work += p.ticks
            elif p.role.startswith("worker:"):
                wkids += p.ticks
        # stamped after the reads: a sampler thread starved mid-sample (2 busy cores) must not date late readings early
        done = time.perf_counter() - self.t0
        self.timeline.append((round(done, 3), cum / HZ, rss_sum, workers, main / HZ, work / HZ, wkids / HZ))

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.sample()
            except Exception:  # noqa: BLE001 - a process vanished mid-read; the next sample is fine
                pass
            self.stop.wait(self.interval)


def _reap_orphans(deadline: float) -> None:
    """Wait for every remaining child (orphans reparented to us) so their CPU lands in RUSAGE_CHILDREN."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            if time.monotonic() > deadline:
                return
            time.sleep(0.02)


def _kill_tree(sampler: _Sampler, root: int) -> None:
    pids = {p.pid for p in sampler.procs.values()} | {root}
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def run(cmd: list[str] | str, *, cwd: str | Path | None = None, env: dict | None = None, stdout=None,
        stderr=None, timeout: float | None = None, shell: bool = False) -> Measurement:
    """Run ``cmd`` (a list, or a bash script when ``shell``) and measure its whole process tree."""
    argv = ["bash", "-o", "pipefail", "-c", cmd] if shell else cmd
    load = loadavg()
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy0 = machine_busy_ticks()
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=stdout if stdout is not None else subprocess.DEVNULL,
                            stderr=stderr if stderr is not None else subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    sampler = _Sampler(proc.pid, t0)
    sampler.start()
    timed_out = False
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_tree(sampler, proc.pid)
        rc = proc.wait()
    wall = time.perf_counter() - t0
    _reap_orphans(time.monotonic() + (2 if timed_out else 30))
    sampler.stop.set()
    sampler.join()
    busy1 = machine_busy_ticks()
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    sampled = sum(p.ticks for p in sampler.procs.values()) / HZ
    if not SUBREAPER:
        cpu = max(cpu, sampled)
    elapsed_all = time.perf_counter() - t0
    other = max(0.0, (busy1 - busy0) / HZ - cpu) / elapsed_all * 100 if elapsed_all else 0.0
    roles: dict[str, float] = {}
    for p in sampler.procs.values():
        roles[p.role] = roles.get(p.role, 0.0) + p.ticks / HZ
    return Measurement(cmd=cmd if isinstance(cmd, str) else " ".join(map(str, cmd)), rc=rc, wall=wall, cpu=cpu,
                       cpu_sampled=sampled, peak_rss=sampler.peak_rss, peak_pss=sampler.peak_pss,
                       max_proc_rss=max((p.rss_max for p in sampler.procs.values()), default=0),
                       peak_rss_by_role=sampler.peak_rss_by_role, peak_pss_anon=sampler.peak_pss_anon,
                       load_before=load, other_cpu_pct=other, roles=roles,
                       detection=_detection_window(sampler), timeline=sampler.timeline, timed_out=timed_out,
                       peak_anon=sampler.peak_anon, peak_anon_by_role=sampler.peak_anon_by_role,
                       max_anon_by_role=sampler.max_anon_by_role)


def _detection_window(s: _Sampler) -> dict[str, float] | None:
    """CPU utilisation while pool workers were alive (auditor's detection stage): tree, main process, workers."""
    tl = s.timeline
    idx = [i for i, row in enumerate(tl) if row[3]]
    if len(idx) < 2:
        return None
    a, b = tl[idx[0]], tl[idx[-1]]
    dt = b[0] - a[0]
    if dt <= 0:
        return None
    return {"start": a[0], "seconds": dt, "cpu_pct": 100 * (b[1] - a[1]) / dt,
            "main_pct": 100 * (b[4] - a[4]) / dt, "workers_pct": 100 * (b[5] - a[5]) / dt,
            "worker_children_pct": 100 * (b[6] - a[6]) / dt,
            "after": tl[-1][0] - b[0]}
