"""Saved replies: their templates, checked when the config loads, and rendering.

A template is plain text with variables in single braces and an optional fallback after a
bar: ``Hi {customer.name|there}, {agent.name} from {brand} here.`` ``{{`` and ``}}`` are
literal braces. Templates are parsed when the config is loaded, so an unknown variable or
a stray brace is a config error naming the reply, never a surprise at send time.

What a variable renders to when the platform did not give us the value and the template
has no fallback (an explicit ``|fallback`` always wins over these):

- ``{customer.name}``: the display name; else the handle (``@alice``); else ``there``.
- ``{customer.handle}``: the handle with one leading ``@`` (as written on the platform;
  email addresses stay as they are); else the display name; else ``there``.
- ``{agent.name}``: the agent's name; for automated replies (no agent) the brand; else
  ``the team``.
- ``{brand}`` (also ``{agent.brand}``): the configured brand; else ``us``.
- ``{platform}``: the platform's usual name (``X``, ``Instagram``, ``email``, ...).

"Move to another channel" replies (ask for a DM, an email, a support page link) are
ordinary saved replies: nothing here treats them specially.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from replydeck.inbox.model import Author

VARIABLES = ("customer.name", "customer.handle", "agent.name", "platform", "brand",
             "agent.brand")

PLATFORM_NAMES = {
    "x": "X", "facebook": "Facebook", "instagram": "Instagram", "mastodon": "Mastodon",
    "bluesky": "Bluesky", "matrix": "Matrix", "email": "email", "telegram": "Telegram",
    "line": "LINE", "reddit": "Reddit", "slack": "Slack", "discord": "Discord",
    "github": "GitHub", "demo": "the demo",
}

# Platforms whose handles are not @-names: shown as they are.
_PLAIN_HANDLE_PLATFORMS = ("email",)


class TemplateError(ValueError):
    """A template that cannot be parsed; the message says where and why."""


@dataclass(frozen=True)
class Var:
    name: str
    fallback: str | None = None


#: A parsed template: literal strings and variables, in order.
Template = tuple["str | Var", ...]


def parse_template(text: str) -> Template:
    """Split ``text`` into literals and :class:`Var` s, rejecting what would not render."""
    parts: list[str | Var] = []
    literal: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "{" and text.startswith("{{", i):
            literal.append("{")
            i += 2
        elif ch == "}" and text.startswith("}}", i):
            literal.append("}")
            i += 2
        elif ch == "}":
            raise TemplateError(f"stray '}}' at character {i + 1} (write '}}}}' for a "
                                "literal brace)")
        elif ch == "{":
            end = text.find("}", i + 1)
            inner = text[i + 1:end] if end != -1 else ""
            if end == -1 or "{" in inner or "\n" in inner:
                raise TemplateError(f"unclosed '{{' at character {i + 1} (write '{{{{' "
                                    "for a literal brace)")
            name, bar, fallback = inner.partition("|")
            name = name.strip()
            if not name:
                raise TemplateError(f"empty variable '{{{inner}}}' at character {i + 1}")
            if name not in VARIABLES:
                known = ", ".join("{" + v + "}" for v in VARIABLES if v != "agent.brand")
                raise TemplateError(f"unknown variable {{{name}}} (known: {known})")
            if literal:
                parts.append("".join(literal))
                literal = []
            parts.append(Var(name, fallback if bar else None))
            i = end + 1
        else:
            literal.append(ch)
            i += 1
    if literal:
        parts.append("".join(literal))
    return tuple(parts)


@dataclass(frozen=True)
class SavedReply:
    name: str
    body: str
    #: Per-platform variants (e.g. a short one for X), by platform name.
    variants: dict[str, str] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    #: Phrases a customer would write when this reply is the answer (for suggestions).
    triggers: tuple[str, ...] = ()
    #: BCP 47 language of the reply text (``en``, ``ja``), None when not said.
    language: str | None = None
    #: Where it was defined (``replies[3]`` or a file path), for messages.
    origin: str = ""
    templates: dict[str, Template] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        # Parse once; a SavedReply built in code gets the same checks as one from config.
        if not self.templates:
            parsed = {"": parse_template(self.body)}
            for platform, text in self.variants.items():
                parsed[platform] = parse_template(text)
            object.__setattr__(self, "templates", parsed)

    def text_for(self, platform: str) -> str:
        return self.variants.get(platform, self.body)


def _handle(author: Author, platform: str) -> str:
    handle = author.handle.strip()
    if not handle:
        return ""
    if platform in _PLAIN_HANDLE_PLATFORMS:
        return handle
    return "@" + handle.lstrip("@")


def _values(*, platform: str, customer: Author, agent_name: str | None,
            brand: str | None) -> dict[str, str]:
    name = customer.name.strip()
    handle = _handle(customer, platform)
    return {
        "customer.name": name,
        "customer.handle": handle,
        "agent.name": (agent_name or "").strip(),
        "platform": PLATFORM_NAMES.get(platform, platform),
        "brand": (brand or "").strip(),
        "agent.brand": (brand or "").strip(),
    }


def _default(var: str, values: dict[str, str]) -> str:
    if var == "customer.name":
        return values["customer.handle"] or "there"
    if var == "customer.handle":
        return values["customer.name"] or "there"
    if var == "agent.name":
        return values["brand"] or "the team"
    if var in ("brand", "agent.brand"):
        return "us"
    return ""


def render(reply: SavedReply, *, platform: str, customer: Author,
           agent_name: str | None = None, brand: str | None = None) -> str:
    """The reply's text for ``platform`` (its variant if it has one), variables filled."""
    template = reply.templates.get(platform, reply.templates[""])
    values = _values(platform=platform, customer=customer, agent_name=agent_name,
                     brand=brand)
    out: list[str] = []
    for part in template:
        if isinstance(part, str):
            out.append(part)
            continue
        value = values.get(part.name, "")
        if not value:
            value = part.fallback if part.fallback is not None else _default(part.name,
                                                                              values)
        out.append(value)
    return "".join(out)
