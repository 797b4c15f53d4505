"""GEMM rates of this machine for a shard job's shape, alone or several side
by side (what a core does while the other cores run GEMMs too).

    python bench/gemm_rates.py --queries 2000 --processes 2
"""

import argparse
import json
import subprocess
import sys

from ilias_knn.engines import measure_gemm_rates


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--rows", type=int, default=7813, help="rows of a score block")
    parser.add_argument("--processes", type=int, default=1, help="one-thread processes side by side")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    shape = (args.queries, args.dim, args.rows)
    if args.processes == 1:
        print(json.dumps(measure_gemm_rates(1, shape, args.repeat)))
        return
    cmd = [
        sys.executable,
        __file__,
        "--queries",
        str(args.queries),
        "--dim",
        str(args.dim),
        "--rows",
        str(args.rows),
        "--repeat",
        str(args.repeat),
    ]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) for _ in range(args.processes)]
    rates = [json.loads(p.communicate()[0]) for p in procs]
    print(json.dumps({name: min(r[name] for r in rates) for name in rates[0]}))


if __name__ == "__main__":
    main()
