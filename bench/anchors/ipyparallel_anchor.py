#!/usr/bin/env python3
"""bench/anchors/ipyparallel_anchor.py — IPython.parallel (Debian's python3-ipyparallel) on this machine.

The API cadre mirrors, measured on a 2-engine cluster over localhost: cluster start (to the first
apply_sync), rc[0].apply_sync and rc[:].apply_sync latency, load-balanced tiny-task throughput, and
scatter/gather of a 100 MB numpy array. Prints one JSON object per line, like the C++ anchors:
  {"anchor": "ipyparallel", "metric": "...", "value": ..., "unit": "..."}
and {"anchor": "ipyparallel", "skipped": true, "reason": "..."} when ipyparallel cannot run here.

Run with the interpreter that has ipyparallel (Debian's: /usr/bin/python3):
  /usr/bin/python3 bench/anchors/ipyparallel_anchor.py [--timeout 240] [--tasks 2000] [--mb 100]
"""
import argparse
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time

ANCHOR = "ipyparallel"


def emit(metric, value, unit, **extra):
    rec = {"anchor": ANCHOR, "metric": metric, "value": value, "unit": unit}
    rec.update(extra)
    print(json.dumps(rec), flush=True)


def skip(reason):
    print(json.dumps({"anchor": ANCHOR, "skipped": True, "reason": reason}), flush=True)


def p99(xs):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(0.99 * (len(xs) - 1) + 0.5))]


def noop(*args):
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--timeout", type=float, default=240.0, help="give up (and skip) after this many seconds")
    ap.add_argument("--engines", type=int, default=2)
    ap.add_argument("--tasks", type=int, default=2000, help="load-balanced tiny tasks")
    ap.add_argument("--mb", type=int, default=100, help="size of the scattered numpy array, MB")
    ap.add_argument("--calls", type=int, default=300, help="apply_sync calls for the latency figures")
    args = ap.parse_args()

    def on_alarm(signum, frame):
        raise TimeoutError(f"ipyparallel anchor did not finish within {args.timeout:.0f} s")

    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(int(args.timeout))

    try:
        import ipyparallel as ipp
        import numpy as np
    except Exception as e:  # noqa: BLE001 - any import failure means "not here"
        skip(f"cannot import ipyparallel/numpy with {sys.executable}: {e}")
        return 0

    # A private IPython profile directory: nothing read from or left in ~/.ipython.
    ipdir = tempfile.mkdtemp(prefix="cadre-ipp-anchor-")
    os.environ["IPYTHONDIR"] = ipdir
    cluster = None
    rc = None
    try:
        t0 = time.perf_counter()
        cluster = ipp.Cluster(n=args.engines, controller_ip="127.0.0.1", log_level=40, shutdown_atexit=True)
        rc = cluster.start_and_connect_sync()
        rc.wait_for_engines(args.engines, timeout=max(10.0, args.timeout / 2))
        rc[0].apply_sync(noop)
        start_s = time.perf_counter() - t0
        emit("start_to_first_apply", start_s * 1e9, "ns", engines=args.engines, version=ipp.__version__)

        e0 = rc[0]
        for _ in range(20):
            e0.apply_sync(noop)
        lat = []
        for _ in range(args.calls):
            t = time.perf_counter()
            e0.apply_sync(noop)
            lat.append((time.perf_counter() - t) * 1e9)
        emit("e0_apply_sync_median", statistics.median(lat), "ns", calls=args.calls)
        emit("e0_apply_sync_p99", p99(lat), "ns", calls=args.calls)

        dv = rc[:]
        for _ in range(10):
            dv.apply_sync(noop)
        lat = []
        for _ in range(args.calls // 2):
            t = time.perf_counter()
            dv.apply_sync(noop)
            lat.append((time.perf_counter() - t) * 1e9)
        emit("all_apply_sync_median", statistics.median(lat), "ns", calls=args.calls // 2, engines=args.engines)

        lview = rc.load_balanced_view()
        lview.map_sync(noop, range(50))  # warm-up
        t = time.perf_counter()
        lview.map_sync(noop, range(args.tasks))  # chunksize=1: one task per item
        s = time.perf_counter() - t
        emit("lb_map_tiny_tasks_per_s", args.tasks / s, "tasks/s", tasks=args.tasks, chunksize=1)
        t = time.perf_counter()
        ars = [lview.apply_async(noop) for _ in range(args.tasks)]
        for ar in ars:
            ar.get()
        s = time.perf_counter() - t
        emit("lb_apply_async_tiny_tasks_per_s", args.tasks / s, "tasks/s", tasks=args.tasks)

        n = args.mb * 1_000_000 // 8
        a = np.arange(n, dtype=np.float64)
        nbytes = a.nbytes
        dv.block = True
        sc, ga = [], []
        for rep in range(3):
            t = time.perf_counter()
            dv.scatter("a", a, block=True)
            sc.append(nbytes / (time.perf_counter() - t))
            t = time.perf_counter()
            b = dv.gather("a", block=True)
            ga.append(nbytes / (time.perf_counter() - t))
            if rep == 0 and not np.array_equal(a, b):
                raise RuntimeError("gather(scatter(a)) != a")
            del b
        emit("scatter_bw_median", statistics.median(sc), "B/s", bytes=nbytes, engines=args.engines)
        emit("gather_bw_median", statistics.median(ga), "B/s", bytes=nbytes, engines=args.engines)
        signal.alarm(0)
        return 0
    except Exception as e:  # noqa: BLE001 - whatever failed, the harness goes on without this anchor
        skip(f"{type(e).__name__}: {e}")
        return 0
    finally:
        signal.alarm(0)
        try:
            if rc is not None:
                rc.close()
            if cluster is not None:
                signal.alarm(30)
                cluster.stop_cluster_sync()
                signal.alarm(0)
        except Exception as e:  # noqa: BLE001
            print(f"ipyparallel_anchor: stopping the cluster: {e}", file=sys.stderr)
        shutil.rmtree(ipdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
