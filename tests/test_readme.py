"""README's library example runs as written."""

import re

import numpy as np

from conftest import ROOT


def test_readme_library_example_runs(capsys):
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    assert blocks, "README lost its library example"
    exec(compile(blocks[0], "README.md", "exec"), {})
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["0", "1", "2"]
    d_losses = np.array([float(line.split()[1]) for line in lines])
    assert np.all((0.3 < d_losses) & (d_losses < 2.5))
