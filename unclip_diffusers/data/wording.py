"""How captions are worded: names of each art style, caption templates per language, and the held-out templates.

Templates are `str.format` strings with the fields `name`, `a` (the name with 'a'/'an'), `the`, `style`,
`keywords` (a comma-separated keyword list) and `kw1`..`kw3`. The held-out templates are never used for training
captions (`matches_heldout` filters them out), so evaluation can score wordings the text tower has not seen.
"""

from __future__ import annotations

import re
import string
from functools import lru_cache

# Truthful names of our 8 styles (data/sources.py STYLES), canonical first. Names with a capital letter or a digit
# are brand-like and also used inside captions in other languages.
STYLE_NAMES: dict[str, tuple[str, ...]] = {
    "Noto": ("Noto", "Noto Color Emoji", "Google", "Google Noto", "Noto emoji", "Android"),
    "Twemoji": ("Twemoji", "Twitter", "Twitter emoji", "Twemoji flat"),
    "OpenMoji": ("OpenMoji", "OpenMoji color", "open source OpenMoji", "hand-drawn OpenMoji"),
    "OpenMoji outline": ("OpenMoji outline", "OpenMoji black and white", "OpenMoji line art", "outline",
                         "line art", "black and white", "black outline"),
    "Fluent 3D": ("Fluent 3D", "Microsoft Fluent 3D", "Microsoft 3D", "3D", "3D rendered"),
    "Fluent flat": ("Fluent flat", "Microsoft Fluent flat", "Microsoft flat", "flat", "flat vector"),
    "Fluent color": ("Fluent color", "Microsoft Fluent color", "Microsoft Fluent", "Fluent", "gradient Fluent"),
    "EmojiOne": ("EmojiOne", "Emoji One", "JoyPixels", "EmojiOne 2"),
}  # fmt: skip

# English training templates that name the style; the primary 'name, Style style' is added separately.
STYLED_TEMPLATES = (
    "{name} in the {style} style",
    "{style} emoji of {name}",
    "{a} in {style} style",
    "{the}, {style} style",
    "{name}, {style}",
    "{style} {name}",
    "{style} {name} emoji",
    "{name} emoji, {style} style",
    "{name} icon, {style} style",
    "{style} icon of {a}",
    "{style} sticker of {a}",
    "{name} sticker in the {style} style",
    "drawing of {a} in the {style} style",
    "{a} drawing, {style}",
    "picture of {a}, {style} style",
    "{name} ({style})",
)
# English training templates without a style, so the concept is also learned across styles.
PLAIN_TEMPLATES = (
    "{name}",
    "{a}",
    "{the}",
    "{name} emoji",
    "{a} emoji",
    "the {name} emoji",
    "{name} icon",
    "{a} sticker",
    "{a} drawing",
    "picture of {a}",
    "emoji of {a}",
)
KEYWORD_TEMPLATES = (
    "{keywords}",
    "{keywords}, {style} style",
    "{name}: {keywords}",
    "{name}, {keywords}",
    "{keywords} emoji, {style} style",
)

# Never in training captions: evaluation scores these to see whether wording generalises.
HELDOUT_TEMPLATES = (
    "{a} drawn in the {style} style",
    "{a} emoji, please",
    "{name} as {style} would draw it",
    "could you draw {a} for me?",
    "{style} artwork showing {a}",
    "{a} in the look of {style}",
)
HELDOUT_KEYWORD_TEMPLATES = (
    "an emoji about {kw1} and {kw2}",
    "show me {kw1}, {kw2} and {kw3}",
)

# Per locale: (emoji form, style form) of a localised name, written as a speaker of that language would.
LOCALE_TEMPLATES: dict[str, tuple[str, str]] = {
    "es": ("emoji de {name}", "{name}, estilo {style}"),
    "fr": ("émoji {name}", "{name}, style {style}"),
    "de": ("{name} Emoji", "{name} im {style}-Stil"),
    "it": ("emoji {name}", "{name}, stile {style}"),
    "pt": ("emoji de {name}", "{name}, estilo {style}"),
    "ja": ("{name}の絵文字", "{name}、{style}スタイル"),
    "zh": ("{name}表情符号", "{name}，{style}风格"),
    "ko": ("{name} 이모지", "{name}, {style} 스타일"),
    "ru": ("эмодзи {name}", "{name}, стиль {style}"),
    "hi": ("{name} इमोजी", "{name}, {style} शैली"),
    "ar": ("إيموجي {name}", "{name}، نمط {style}"),
    "nl": ("{name} emoji", "{name}, {style}-stijl"),
    "tr": ("{name} emojisi", "{name}, {style} stili"),
}
GENERIC_LOCALE_TEMPLATES = ("{name} emoji", "{name}, {style}")  # a locale without its own templates


def style_names(style: str) -> tuple[str, ...]:
    """The names of `style`, canonical first (just the style itself for a style not in `STYLE_NAMES`)."""
    return STYLE_NAMES.get(style, (style,))


def brand_style_names(style: str) -> tuple[str, ...]:
    """The names of `style` that are not English words ('Google', '3D', 'Microsoft flat'), for other languages."""
    return tuple(n for n in style_names(style) if any(c.isupper() or c.isdigit() for c in n)) or (style,)


def with_article(name: str, article: str) -> str:
    """'a cat', 'an owl', 'the cat'; names such as 'flag: Germany' or 'keycap: 1' stay bare."""
    if article not in ("a", "the"):
        raise ValueError(f"article must be 'a' or 'the', got {article!r}")
    if not name or ":" in name or name[0].isdigit():
        return name
    if article == "a" and name[0].lower() in "aeiou":
        return f"an {name}"
    return f"{article} {name}"


def fill(template: str, name: str = "", style: str = "", keywords: tuple[str, ...] = ()) -> str:
    """Fill a template's fields (`a`/`the` from `name`, `keywords`/`kw1`.. from `keywords`)."""
    fields = {"name": name, "a": with_article(name, "a"), "the": with_article(name, "the"), "style": style,
              "keywords": ", ".join(keywords)}  # fmt: skip
    fields.update({f"kw{i + 1}": word for i, word in enumerate(keywords)})
    try:
        return template.format_map(fields)
    except KeyError as err:
        raise ValueError(f"template {template!r} needs field {err.args[0]!r}, which was not given") from None


def template_fields(template: str) -> set[str]:
    """The field names a template uses."""
    return {f for _, f, _, _ in string.Formatter().parse(template) if f}


@lru_cache(maxsize=None)
def _pattern(template: str) -> re.Pattern:
    parts = [re.escape(literal) + ("(.+)" if field is not None else "")
             for literal, field, _, _ in string.Formatter().parse(template)]  # fmt: skip
    return re.compile("".join(parts), re.IGNORECASE)


def matches_heldout(caption: str) -> bool:
    """True when `caption` has the wording of a held-out template (whatever fills its fields)."""
    return any(_pattern(t).fullmatch(caption) for t in HELDOUT_TEMPLATES + HELDOUT_KEYWORD_TEMPLATES)
