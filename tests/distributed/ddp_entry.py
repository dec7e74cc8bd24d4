"""torchrun entry point for the DDP tests: ``mtl-train`` with the test weightings registered.

python -m torch.distributed.run --nproc_per_node=2 tests/distributed/ddp_entry.py <overrides>
"""

import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(TESTS.parent), str(TESTS)]

from scale_helpers import TEST_METHODS  # noqa: E402

from mtl_cli.train import main  # noqa: E402
from mtl_cli.weighting import METHODS  # noqa: E402

if __name__ == "__main__":
    METHODS.update(TEST_METHODS)
    main()
