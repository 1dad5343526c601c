"""Template filters that hand untrusted text to labeling/rendering.py."""

from django import template

from labeling import rendering

register = template.Library()


@register.filter
def markdown(text: str):
    return rendering.render_markdown(text)
