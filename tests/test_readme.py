"""The README's example runs as written."""

import pathlib
import re


def test_readme_example_runs(capsys):
    readme = (pathlib.Path(__file__).resolve().parent.parent / "README.md").read_text()
    example = re.search(r"## Example\n\n```python\n(.*?)```", readme, re.S).group(1)
    exec(compile(example, "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "synaptic operations" in out
