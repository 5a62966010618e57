"""Hallmark's adapters: HTTP, CLI, storage, keys.

One numeric thread per process: requests already run in parallel (threads, workers), and the watermark's
small matrix products gain nothing from BLAS threads, whose idle spinning measured here as about 60 ms of
extra CPU per 1 MP sign. Set before numpy loads (the core imports it lazily); an operator's own value wins.
"""

import os

for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")
