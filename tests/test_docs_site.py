"""The docs site's hooks (tools/mkdocs_hooks.py): repository links become site links, integration pages get listed.

`make docs` builds the whole site with warnings as errors; these tests pin what the hooks do to the Markdown.
"""

import functools
import importlib.util
import logging
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

pytest.importorskip("mkdocs")

ROOT = Path(__file__).resolve().parents[1]


def load_hooks():
    spec = importlib.util.spec_from_file_location("mkdocs_hooks", ROOT / "tools" / "mkdocs_hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


hooks = load_hooks()


def site(tmp_path, nav=None):
    """A repository with docs/ as mkdocs sees it: the config's file path and docs folder."""
    (tmp_path / "docs" / "results").mkdir(parents=True)
    for page in ("losses.md", "results/theorem1.md", "results/figure.png"):
        (tmp_path / "docs" / page).write_text("# page\n")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "module.py").write_text("")
    return SimpleNamespace(
        config_file_path=str(tmp_path / "mkdocs.yml"), docs_dir=str(tmp_path / "docs"), nav=nav or ["index.md"]
    )


def render(config, page, markdown):
    generated = page in hooks.GENERATED_PAGES.values()
    source = None if generated else str(Path(config.docs_dir) / page)
    page = SimpleNamespace(file=SimpleNamespace(src_uri=page, abs_src_path=source))
    return hooks.on_page_markdown(markdown, page, config, None)


def test_readme_links_point_at_the_site_pages(tmp_path):
    config = site(tmp_path)
    readme = (
        "See [losses](docs/losses.md#tiling), ![fig](docs/results/figure.png), [the reproduction](REPRODUCTION.md),"
        " [code](src/module.py), [docs/results/](docs/results/), [web](https://example.org/x.md) and [top](#set-up)."
    )
    assert render(config, "index.md", readme) == (
        "See [losses](losses.md#tiling), ![fig](results/figure.png), [the reproduction](reproduction.md),"
        " code (`src/module.py`), `docs/results/`, [web](https://example.org/x.md) and [top](#set-up)."
    )


def test_docs_page_links_stay_and_links_out_of_docs_are_converted(tmp_path, caplog):
    config = site(tmp_path)
    page = 'See [losses](../losses.md), [home](../../README.md "home"), [table](theorem1.md) and [gone](../../x.py).'
    assert render(config, "results/latent.md", page) == (
        'See [losses](../losses.md), [home](../index.md "home"), [table](theorem1.md) and gone (`x.py`).'
    )
    # A broken link inside docs/ stays a link, for MkDocs to report; one outside docs/ is reported here.
    assert render(config, "index.md", "[typo](docs/losse.md)") == "[typo](losse.md)"
    with caplog.at_level(logging.WARNING, logger="mkdocs"):
        render(config, "losses.md", "[typo](../src/modul.py)")
    assert "contains a link to '../src/modul.py', which does not exist" in caplog.text
    fenced = "```markdown\n[losses](docs/losses.md)\n```\n[losses](../README.md)\n"
    assert render(config, "training.md", fenced) == "```markdown\n[losses](docs/losses.md)\n```\n[losses](index.md)\n"


def test_integration_pages_are_listed_in_the_navigation(tmp_path):
    nav = ["index.md", {"Guide": ["losses.md"]}, {"Reproduction": ["reproduction.md"]}, {"API": ["api/losses.md"]}]
    config = site(tmp_path, nav=list(nav))
    assert hooks.on_config(config).nav == nav  # no integrations folder: nothing added
    (tmp_path / "docs" / "integrations").mkdir()
    (tmp_path / "docs" / "integrations" / "lightning.md").write_text("# Lightning: `HypersphereMonitor`\n\ntext\n")
    (tmp_path / "docs" / "integrations" / "index.md").write_text("# Integrations\n")
    (tmp_path / "docs" / "integrations" / "hugging_face.md").write_text("no title\n")
    entries = [
        {"Overview": "integrations/index.md"},
        {"hugging face": "integrations/hugging_face.md"},
        {"Lightning": "integrations/lightning.md"},
    ]
    assert hooks.on_config(config).nav == [*nav[:2], {"Integrations": entries}, *nav[2:]]
    assert hooks.on_config(config).nav == [*nav[:2], {"Integrations": entries}, *nav[2:]]  # listed once


def test_sphinx_roles_are_dropped_from_rendered_docstrings():
    html = "<p>See :func:<code>aligniform.plots.plot_trajectory</code>, :py:class:<code>Trajectory</code>: a:b.</p>"
    assert hooks.on_page_content(html, None, None, None) == (
        "<p>See <code>aligniform.plots.plot_trajectory</code>, <code>Trajectory</code>: a:b.</p>"
    )
    short = "<li>as in :func:<code>~aligniform.integrations.common.hypersphere_metrics</code></li>"
    assert hooks.on_page_content(short, None, None, None) == "<li>as in <code>hypersphere_metrics</code></li>"


@functools.cache  # a page is rendered once, however many links point at it
def heading_anchors(page: Path) -> frozenset[str]:
    """The ids `mkdocs build` gives a page's headings: the page rendered by Python-Markdown with mkdocs.yml's toc,
    attr_list (a `{#id}` wins), admonition, tables and superfences (no heading inside a fence)."""
    import markdown

    extensions = ["toc", "attr_list", "admonition", "tables", "pymdownx.superfences"]
    html = markdown.Markdown(extensions=extensions).convert(page.read_text(encoding="utf-8"))
    return frozenset(re.findall(r'<h[1-6] id="([^"]+)"', html))


def test_every_link_to_a_section_finds_its_heading():
    # `make docs` catches these too, but only after the whole test run; a renamed heading should fail here.
    pages = [ROOT / "README.md", ROOT / "REPRODUCTION.md", *sorted((ROOT / "docs").rglob("*.md"))]
    broken = []
    for page in pages:
        for target, anchor in re.findall(r"\]\(([^)#\s]*\.md)#([^)\s]+)\)", page.read_text(encoding="utf-8")):
            linked = (page.parent / target).resolve()
            if linked.is_file() and anchor not in heading_anchors(linked):
                broken.append(f"{page.relative_to(ROOT)}: {target}#{anchor}")
    assert not broken, "no such heading (run `make docs` for the site's own check): " + ", ".join(broken)
