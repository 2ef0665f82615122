"""``python -m benchmarks.tensorfuzz nans|quantization|bar [--quick]``."""

from __future__ import annotations

import argparse

import torch

from benchmarks.tensorfuzz import __doc__ as DOC
from benchmarks.tensorfuzz.bar import bar
from benchmarks.tensorfuzz.common import provenance
from benchmarks.tensorfuzz.nans import nans
from benchmarks.tensorfuzz.quantization import quantization

EXPERIMENTS = {"nans": nans, "quantization": quantization, "bar": bar}


def main() -> None:
    parser = argparse.ArgumentParser(description=DOC.splitlines()[0])
    parser.add_argument("experiment", choices=tuple(EXPERIMENTS))
    parser.add_argument("--quick", action="store_true", help="a smaller run of about a minute")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: these models are tiny, and extra "
                             "threads slow them down on a shared machine)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    provenance()  # the commit the experiment starts from
    EXPERIMENTS[args.experiment](args.quick)


if __name__ == "__main__":
    main()
