"""The pytest-benchmark micro-benchmarks in bench/ are not part of the normal run, but they must
collect (a broken import there would otherwise go unnoticed until someone benchmarks)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_benchmarks_collect():
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "bench"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    collected = [line for line in out.stdout.splitlines() if "::" in line]
    files = {line.split("::")[0] for line in collected}
    for name in ("test_bench_wals.py", "test_bench_softmax.py", "test_bench_harness.py",
                 "test_bench_datasets.py"):
        assert any(f.endswith(name) for f in files), f"{name} collected nothing"
    # MF and DNN rows sit side by side: both families appear in the shared groups
    text = (ROOT / "bench" / "test_bench_wals.py").read_text() + (ROOT / "bench" / "test_bench_softmax.py").read_text()
    for group in ("fit-iteration", "serve-single"):
        assert text.count(f'"{group}"') >= 2, group
