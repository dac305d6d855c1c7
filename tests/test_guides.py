"""The guides under docs/guides/ run as written: each page's ```python blocks, in order, in one fresh
interpreter whose working folder is a new temporary folder (so the files a guide writes land
there). A block fenced as ```python title="not run" (or as text, bash, ...) is not run. The
environment is the caller's with GPUNET_* variables dropped (but GPUNET_DATA and GPUNET_CACHE, where
MNIST may be) and GPUNET_BACKEND=cpu, as a user's fresh shell on a CPU would have it."""
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GUIDES = ROOT / "docs" / "guides"
PAGES = sorted(GUIDES.glob("*.md"))
# a fence line that is exactly ```python (any indentation), its body, the closing fence
FENCE = re.compile(r"^(?P<indent>[ \t]*)```python[ \t]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.M | re.S)

DRIVER = """
import sys
blocks = {blocks!r}
namespace = {{"__name__": "__main__"}}
for line, source in blocks:
    print(f"--- {page}, the block from line {{line + 1}}", flush=True)
    print(f"--- {page}, the block from line {{line + 1}}", file=sys.stderr, flush=True)
    # pad with blank lines so that a traceback gives the line number in the Markdown file
    exec(compile("\\n" * line + source, {page!r}, "exec"), namespace)
"""


def python_blocks(page: Path) -> list[tuple[int, str]]:
    """(0-based index of the line where the block's code starts, its code) for every ```python block."""
    text = page.read_text()
    out = []
    for m in FENCE.finditer(text):
        first = text.count("\n", 0, m.start("body"))
        out.append((first, textwrap.dedent(m.group("body"))))
    return out


def test_every_guide_has_python_blocks():
    assert PAGES, "no guide pages found under docs/guides/"
    for page in PAGES:
        assert python_blocks(page), f"{page.name} has no ```python block to run"


@pytest.mark.parametrize("page", PAGES, ids=[p.stem for p in PAGES])
def test_guide_runs_as_written(page, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("GPUNET_") or k in ("GPUNET_DATA", "GPUNET_CACHE")}
    env.update(GPUNET_BACKEND="cpu", MPLBACKEND="Agg", MPLCONFIGDIR=str(tmp_path / "mpl"),
               PYTHONPATH=str(ROOT))  # this checkout's gpunet, whatever is installed
    rel = str(page.relative_to(ROOT))
    script = DRIVER.format(blocks=python_blocks(page), page=rel)
    proc = subprocess.run([sys.executable, "-c", script], cwd=work, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, (f"{rel} failed (exit {proc.returncode})\n--- stdout\n{proc.stdout[-4000:]}"
                                  f"\n--- stderr\n{proc.stderr[-6000:]}")
