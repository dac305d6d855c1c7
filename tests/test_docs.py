"""The documentation site: ``mkdocs build --strict`` succeeds (no broken link, no missing page, every
docstring of the API reference renders), and the getting-started page shows the README's commands
and quickstart as they are."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_the_site_builds_strictly(tmp_path):
    try:
        import mkdocs  # noqa: F401
        import mkdocstrings  # noqa: F401
    except ImportError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"the docs extra is not installed ({exc}); CI must build the site")
        pytest.skip(f"the docs extra is not installed ({exc})")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    api = (tmp_path / "site" / "api" / "layers" / "index.html").read_text()
    for name in ("LayerNorm", "WeightNorm", "BatchNorm2d", "Conv2d"):
        assert f'id="gpunet.layers.{name}"' in api, name  # rendered from its docstring
    assert (tmp_path / "site" / "normalization" / "index.html").is_file()


def _block(text: str, marker: str) -> str:
    block = re.search(rf"<!-- {marker} -->\s*```\w*\n(.*?)```", text, re.S)
    assert block, marker
    return block.group(1)


def test_getting_started_shows_the_readme_commands_and_quickstart():
    readme = (ROOT / "README.md").read_text()
    page = (ROOT / "docs" / "index.md").read_text()
    for marker in ("main-command", "test-command", "quickstart"):
        assert _block(page, marker) == _block(readme, marker), marker
