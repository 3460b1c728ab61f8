"""retain_freed_memory: a freed large block stays resident (glibc), instead of going back to the OS."""

import subprocess
import sys

import pytest

CODE = """
import sys
import torch
from profiling import retain_freed_memory

def resident_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20

if sys.argv[1] == "retain":
    assert retain_freed_memory()
before = resident_mib()
block = torch.ones(64 * 2**20 // 4)  # 64 MiB, touched
del block
print(resident_mib() - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc and /proc/self/statm")
def test_freed_memory_stays_resident_only_when_retained():
    def growth(mode: str) -> float:
        out = subprocess.run([sys.executable, "-c", CODE, mode], capture_output=True, text=True, check=True)
        return float(out.stdout)

    assert growth("default") < 16  # glibc munmaps the 64 MiB block on free
    assert growth("retain") > 48  # kept in the heap for the next allocation
