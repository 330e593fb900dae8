"""How long the `adapters` verbs that touch no model take to start and finish, and what they import.

    python benchmarks/cli_start.py [--repeats 10]

Each verb runs as a fresh process (what a user waits for) on an empty registry, `--repeats`
times; prints the minimum, median and maximum wall time, and whether a model library
(torch, transformers, peft, sentence-transformers, accelerate) was imported.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VERBS = (["--help"], ["list"], ["show", "1"], ["rm", "1"], ["verify"], ["gc", "--dry-run"], ["db", "upgrade"], ["index", "rebuild"])
MODEL_LIBRARIES = ("torch", "transformers", "peft", "sentence_transformers", "accelerate")
PROBE = """
import sys
from cli.main import app
try:
    app(sys.argv[1:])
except SystemExit:
    pass
print("imported:", ",".join(name for name in {libraries!r} if name in sys.modules), file=sys.stderr)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    executable = Path(sys.executable).with_name("adapters")
    with tempfile.TemporaryDirectory() as folder:
        registry = str(Path(folder) / "registry")
        subprocess.run([str(executable), "db", "upgrade", "--registry", registry], check=True, capture_output=True)
        print("| verb | min s | median s | max s | model libraries imported |")
        print("| --- | ---: | ---: | ---: | --- |")
        for verb in VERBS:
            command = [str(executable), *verb] + ([] if verb == ["--help"] else ["--registry", registry])
            times = []
            for _ in range(args.repeats):
                started = time.perf_counter()
                subprocess.run(command, capture_output=True, check=False)
                times.append(time.perf_counter() - started)
            probe = subprocess.run([sys.executable, "-c", PROBE.format(libraries=MODEL_LIBRARIES), *command[1:]], capture_output=True, text=True, cwd=ROOT)
            imported = next((line.split(":", 1)[1].strip() for line in probe.stderr.splitlines() if line.startswith("imported:")), "?") or "none"
            print(f"| adapters {' '.join(verb)} | {min(times):.2f} | {statistics.median(times):.2f} | {max(times):.2f} | {imported} |")


if __name__ == "__main__":
    main()
