"""The only place that turns untrusted text (prompts, responses, guidelines) into HTML.

markdown-it-py with raw HTML off renders markdown; fenced code is highlighted
server-side by Pygments; nh3 then cleans the result against an allowlist, keeping
only http, https and mailto links. This module is the only one allowed to call
`mark_safe`: a test fails if it appears anywhere else.
"""

import difflib
import html
import re

import nh3
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound

ALLOWED_TAGS = {
    "p", "br", "hr", "strong", "em", "b", "i", "s", "del", "code", "pre", "span", "div",
    "blockquote", "ul", "ol", "li", "h1", "h2", "h3", "h4", "h5", "h6",
    "table", "thead", "tbody", "tr", "th", "td", "a",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "span": {"class"},
    "div": {"class"},
    "code": {"class"},
    "pre": {"class"},
    "ol": {"start"},
}
_FORMATTER = HtmlFormatter(nowrap=True)


def _highlight(code: str, language: str, _attrs) -> str:
    try:
        lexer = get_lexer_by_name(language.strip().split()[0]) if language.strip() else None
    except ClassNotFound:
        lexer = None
    if lexer is None:
        return ""  # markdown-it escapes and wraps the code itself
    return highlight(code, lexer, _FORMATTER)


_MARKDOWN = MarkdownIt("commonmark", {"html": False, "linkify": False, "highlight": _highlight}).enable("table")
_MARKDOWN.enable("strikethrough")


def render_markdown(text: str) -> SafeString:
    """Untrusted markdown to sanitized HTML."""
    raw = _MARKDOWN.render(text or "")
    clean = nh3.clean(
        raw,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )
    return mark_safe(clean)  # noqa: S308 - cleaned by nh3 just above


_TOKEN = re.compile(r"\s+|\w+|[^\w\s]")


def render_diff(left: str, right: str) -> tuple[SafeString, SafeString]:
    """Two untrusted texts, escaped, with the words that differ between them marked."""
    left_tokens, right_tokens = _TOKEN.findall(left or ""), _TOKEN.findall(right or "")
    matcher = difflib.SequenceMatcher(a=left_tokens, b=right_tokens, autojunk=False)
    left_html, right_html = [], []
    for operation, a_start, a_end, b_start, b_end in matcher.get_opcodes():
        left_part = html.escape("".join(left_tokens[a_start:a_end]))
        right_part = html.escape("".join(right_tokens[b_start:b_end]))
        if operation == "equal":
            left_html.append(left_part)
            right_html.append(right_part)
            continue
        if left_part:
            left_html.append(f'<mark class="diff-del">{left_part}</mark>')
        if right_part:
            right_html.append(f'<mark class="diff-ins">{right_part}</mark>')
    return mark_safe("".join(left_html)), mark_safe("".join(right_html))  # noqa: S308 - every part escaped above
