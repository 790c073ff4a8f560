"""Peak resident memory of one call, measured in a fresh process (group 6).

    python -m bench.memprobe VARIANT PROGRAM N DTYPE [THREADS]    # VARIANT: nc | hand
    python -m bench.memprobe --launch WORKERS < jobs.json           # runs probes, prints JSON lines

prints one JSON line per probe. Method: import torch, nc and the programs; compile (nc); make the inputs
(N samples); make one warm-up call at N = 1 (so that lazy initialisation is outside the
measurement); then baseline = ``resource.getrusage(RUSAGE_SELF).ru_maxrss``; one call at N;
peak = ``ru_maxrss`` again. The delta (KiB) is the extra peak resident memory of the call,
including its result. ``gap_kib`` is how far the current RSS was below the high-water mark at
the baseline (memory the call could reuse without raising the mark; ~0 when the inputs were the
last thing allocated).

Linux keeps a process's ``ru_maxrss`` across fork and exec: a probe started directly from a
big process (pytest with torch, inductor and friends loaded: hundreds of MiB) would start with
that process's high-water mark and show no rise at all. So the benchmark starts a small launcher
(``--launch``, which imports nothing heavy) and the launcher starts the probes: a fork from a
small process starts with a small mark. ``vmhwm_kib`` (``VmHWM`` of /proc/self/status, the
high-water mark of this process image alone) is reported as a cross-check.
"""

from __future__ import annotations

import gc
import json
import resource
import sys
from pathlib import Path


def current_rss_kib() -> int:
    try:
        fields = Path("/proc/self/statm").read_text().split()
    except OSError:
        return -1
    import os

    return int(fields[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def vmhwm_kib() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return -1


def probe(variant: str, pid: str, n: int, dtype_name: str, threads: int = 0) -> dict[str, object]:
    import torch

    import nc
    from bench import programs as P

    if threads:
        torch.set_num_threads(threads)
    dtype = {"float32": torch.float32, "float64": torch.float64}[dtype_name]
    formula = P.by_id(pid)
    f = nc.compile_fn(formula.defined_source)
    fn = f if variant == "nc" else P.HAND[pid]
    fn(*P.make_inputs(formula, f.inputs, 1, dtype))  # warm-up
    xs = P.make_inputs(formula, f.inputs, n, dtype)
    gc.collect()
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    gap = base - current_rss_kib()
    hwm0 = vmhwm_kib()
    out = fn(*xs)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    hwm = vmhwm_kib() - hwm0
    return {"variant": variant, "program": pid, "n": n, "dtype": dtype_name, "baseline_kib": base,
            "peak_kib": peak, "delta_kib": peak - base, "gap_kib": gap, "vmhwm_delta_kib": hwm,
            "result_kib": out.numel() * out.element_size() // 1024, "threads": torch.get_num_threads()}


def launch(workers: int, jobs: list[list[str]]) -> None:
    """Run ``python -m bench.memprobe *job`` for each job, ``workers`` at a time; print their lines."""
    import subprocess
    from concurrent.futures import ThreadPoolExecutor

    def one(job: list[str]) -> str:
        done = subprocess.run([sys.executable, "-m", "bench.memprobe", *job], capture_output=True, text=True,
                              timeout=600)
        if done.returncode != 0:
            return json.dumps({"job": job, "error": done.stderr[-2000:]})
        return done.stdout.strip().splitlines()[-1]

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for line in pool.map(one, jobs):
            print(line, flush=True)


def main(argv: list[str]) -> None:
    if argv and argv[0] == "--launch":
        launch(int(argv[1]), json.loads(sys.stdin.read()))
        return
    variant, pid, n, dtype_name = argv[:4]
    threads = int(argv[4]) if len(argv) > 4 else 0
    print(json.dumps(probe(variant, pid, int(n), dtype_name, threads)))


if __name__ == "__main__":
    main(sys.argv[1:])
