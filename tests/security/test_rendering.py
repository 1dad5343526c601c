import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from labeling.rendering import render_markdown

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "payload",
    [
        "<script>alert(1)</script>",
        '<img src=x onerror="alert(1)">',
        "[click](javascript:alert(1))",
        "[click](JaVaScRiPt:alert(1))",
        "[click](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
        '<div hx-get="/logout/" hx-trigger="load">x</div>',
        "<a href='javascript:alert(1)'>x</a>",
        "<svg onload=alert(1)>",
        "</textarea><script>alert(1)</script>",
    ],
)
def test_untrusted_markdown_renders_inert(payload):
    elements = _elements(str(render_markdown(payload)))
    assert not {tag for tag, _ in elements} & {"script", "img", "svg", "iframe", "object", "style", "textarea"}
    for tag, attributes in elements:
        for name, value in attributes:
            assert not name.startswith(("on", "hx-", "data-hx")), (tag, name)
            if name in {"href", "src"}:
                assert (value or "").lower().startswith(("http:", "https:", "mailto:")), (tag, name, value)


def _elements(html: str) -> list[tuple[str, list]]:
    found = []

    class Collector(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.append((tag, attrs))

    Collector().feed(html)
    return found


def test_code_blocks_are_highlighted_and_escaped():
    html = str(render_markdown('```python\nx = "<b>"\n```'))
    assert '<span class="n">x</span>' in html
    assert "&lt;b&gt;" in html


def test_links_keep_http_and_get_rel():
    html = str(render_markdown("[docs](https://example.org)"))
    assert 'href="https://example.org"' in html and "noopener" in html


def test_mark_safe_and_safe_filter_appear_only_in_the_rendering_module():
    pattern = re.compile(r"mark_safe|\|\s*safe\b|SafeString\(|format_html\(")
    hits = {
        str(path.relative_to(ROOT))
        for folder in ("labeling", "templates", "feedback")
        for path in (ROOT / folder).rglob("*")
        if path.suffix in {".py", ".html", ".txt"} and pattern.search(path.read_text(encoding="utf-8"))
    }
    assert hits == {"labeling/rendering.py"}  # the one module that marks sanitized HTML safe (so the search works)
