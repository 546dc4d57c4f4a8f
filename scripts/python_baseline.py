#!/usr/bin/env python3
"""CPython baseline for benches/heavy.rs: the seed's heavy_lifting loop.

Times `for k in range(n): math.factorial(k)` (each k! from scratch, as the seed and
heavylift's job do) and prints one line per n, median of 5 runs, in the same format as
`cargo bench --bench heavy`, so the two can be read side by side:

    python3 scripts/python_baseline.py          # n = 2000 and 3500
    python3 scripts/python_baseline.py 20000    # any n, one run each is long
"""

import math
import statistics
import sys
import time

RUNS = 5


def heavy_lifting(n):
    for k in range(n):
        math.factorial(k)


def main(argv):
    sizes = [int(a) for a in argv[1:]] or [2000, 3500]
    for n in sizes:
        times = []
        for _ in range(RUNS):
            started = time.perf_counter()
            heavy_lifting(n)
            times.append(time.perf_counter() - started)
        ms = statistics.median(times) * 1e3
        print(f"cpython heavy_lifting n={n}: {ms:.1f} ms/op", flush=True)


if __name__ == "__main__":
    main(sys.argv)
