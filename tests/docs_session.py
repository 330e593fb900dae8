"""Runs the code blocks of one documentation page in order, as a reader would: `python docs_session.py BLOCKS.json`.

BLOCKS.json is a list of {"lang", "code", "where"}. Python blocks share one namespace (a page's
later blocks use what its earlier ones defined); each bash block runs in its own `bash -euo pipefail`
in the current folder. The first block that fails stops the page, and the last line printed says which.
"""

from __future__ import annotations

import json
import subprocess
import sys
import traceback
from pathlib import Path


def main(blocks_file: str) -> int:
    namespace: dict[str, object] = {"__name__": "__docs__"}
    for block in json.loads(Path(blocks_file).read_text(encoding="utf-8")):
        print(f"--- {block['where']} ({block['lang']})", flush=True)
        if block["lang"] == "python":
            try:
                exec(compile(block["code"], block["where"], "exec"), namespace)
            except Exception:
                traceback.print_exc()
                print(f"docs example failed: {block['where']}", flush=True)
                return 1
        else:
            sys.stdout.flush()
            if subprocess.run(["bash", "-euo", "pipefail", "-c", block["code"]]).returncode != 0:
                print(f"docs example failed: {block['where']}", flush=True)
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
