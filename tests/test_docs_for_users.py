"""The README, docs/ and every --help are written for users: no lab notebook, links that resolve,
and a glossary of the terms they use."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ganctl.cli import app
from tests.helpers import invoke

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]

# What a user cannot know about: how the work was organised, who lent what, files of the workplace.
NOT_FOR_USERS = [
    r"\b(first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|\d+(st|nd|rd|th))[\s-]+(screening\s+)?(round|attempt|session)s?\b",
    r"\b(round|attempt|session)s?\s+\d",
    r"\bsessions?\b",
    r"\b(lent|lend|lends|lending)\b",
    r"\bscratch\s+(code|scripts?|folders?|files?|runs?)\b",
    r"/work/",
]


def _lab_notebook_words(text: str) -> list[str]:
    prose = re.sub(r"```.*?```|`[^`\n]*`", "", text, flags=re.S)  # code (an onnxruntime session) is not prose
    return [m.group(0) for pattern in NOT_FOR_USERS for m in re.finditer(pattern, prose, re.I)]


def test_the_check_itself_finds_what_it_should():
    assert _lab_notebook_words("the third round (fifth session) on a GPU lent to us") == ["third round", "fifth session", "session", "lent"]
    assert _lab_notebook_words("the other way round; rounds of the bar; 3 rounds") == []
    assert _lab_notebook_words("D from scratch; `session.run(...)`") == []
    assert _lab_notebook_words("the scratch script of these screens") == ["scratch script"]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_pages_speak_to_users(page):
    assert _lab_notebook_words(page.read_text()) == []


def test_help_speaks_to_users():
    texts = {"ganctl": invoke("--help").stdout}
    for command in [c.name for c in app.registered_commands]:
        texts[command] = invoke(command, "--help").stdout
    assert {name: _lab_notebook_words(text) for name, text in texts.items() if _lab_notebook_words(text)} == {}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_and_images_resolve(page):
    for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        path = (page.parent / target.split("#")[0]).resolve()
        assert path.exists(), f"{page.relative_to(ROOT)} links to {target}, which does not exist"


def test_the_glossary_explains_the_terms_and_is_linked_where_they_are_used():
    glossary = (ROOT / "docs" / "glossary.md").read_text()
    for term in ("FID", "KID", "EMA", "kimg", "bf16", "Spectral norm", "Hinge", "DiffAugment", "R1, R2, GP",
                 "Projection D", "cBN", "slerp", "X-Lipschitz in pixel units", "Joint, separate, simultaneous"):
        assert f"**{term}" in glossary or term in glossary, term
    for page in ("recipes.md", "train.md", "eval.md", "research/demo-recipe.md"):
        assert "glossary.md" in (ROOT / "docs" / page).read_text(), page
    assert "docs/glossary.md" in invoke("--help").stdout
    assert "glossary" in invoke("train", "--help").stdout


def test_recipes_is_a_users_page_and_the_research_log_is_apart():
    recipes = (ROOT / "docs" / "recipes.md").read_text()
    assert recipes.startswith("# Recipes: what each is for, what it costs, what it reaches")
    assert "**What it costs.**" in recipes and "**What it reaches.**" in recipes and "**Protocols.**" in recipes
    assert "research/demo-recipe.md" in recipes
    assert "| change (with ×8" not in recipes  # the tables of variants tried live in the research log
    research = (ROOT / "docs" / "research" / "demo-recipe.md").read_text()
    assert "| change (with ×8" in research and "## Why the FID stays high" in research
