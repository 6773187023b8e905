"""The docs show real code: the plugin page quotes the example plugin's files verbatim."""

from __future__ import annotations

from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_plugin_page_quotes_the_example_plugin_verbatim():
    page = (DOCS / "writing-a-plugin.md").read_text()
    for name, fence in (("tiny_gan.py", "python"), ("pyproject.toml", "toml")):
        text = (DOCS / "example-plugin" / name).read_text()
        assert f"```{fence}\n{text}```" in page, name
