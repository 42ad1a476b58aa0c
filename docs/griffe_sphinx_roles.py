"""A griffe extension for the API reference: adabias's docstrings in Markdown.

The docstrings are Google style with Sphinx's inline roles (``:func:`adam```,
``:class:`~adabias.engine.SweepResult```) and ``#:`` comments above module constants. This
extension, loaded by mkdocstrings (``extensions`` in ``mkdocs.yml``), rewrites every role into
an optional cross-reference: a link when the target is rendered somewhere in the reference,
plain code otherwise (never a warning), titled like Sphinx (``~`` keeps the last component).
An attribute without a docstring takes the ``#:`` comment lines just above it.
"""

from __future__ import annotations

import html
import re
from typing import Any

import griffe

ROLE = re.compile(r":(func|class|mod|data|meth|attr|obj|exc|const):`(~?)([^`<>]+?)`")


def _resolve(obj: griffe.Object, target: str) -> str:
    """The full path of ``target`` as written in ``obj``'s docstring (best effort)."""
    target = target.strip().lstrip(".")
    if target.startswith("adabias"):
        return target
    head, _, rest = target.partition(".")
    for scope in (obj, obj.parent):
        if scope is None:
            continue
        try:
            path = scope.resolve(head)
        except Exception:  # griffe.NameResolutionError, or an unresolvable alias
            continue
        return f"{path}.{rest}" if rest else path
    return target


def _unshadow(obj: griffe.Object, path: str) -> str:
    """``pkg.adam`` -> ``pkg.adam.adam`` when ``pkg/__init__.py`` imports the function ``adam``
    from its module ``adam``: Python binds the name to the function, griffe to the module."""
    try:
        found = obj.modules_collection[path]
    except Exception:
        return path
    name = path.rsplit(".", 1)[-1]
    if getattr(found, "is_module", False) and name in found.members:
        return f"{path}.{name}"
    return path


def _rewrite(obj: griffe.Object, text: str) -> str:
    def role(match: re.Match) -> str:
        kind, short, target = match.group(1), match.group(2), match.group(3).strip()
        title = target.rsplit(".", 1)[-1] if short else target
        path = _resolve(obj, target)
        if kind != "mod":
            path = _unshadow(obj, path)
        identifier = html.escape(path, quote=True)
        return f'<autoref identifier="{identifier}" optional><code>{html.escape(title)}</code></autoref>'

    return ROLE.sub(role, text)


def _comment_docstring(attr: griffe.Attribute) -> str | None:
    """The ``#:`` comment lines right above an attribute, joined, or None."""
    try:
        lines = attr.parent.lines if attr.parent is not None else []
    except Exception:
        return None
    index = (attr.lineno or 0) - 2  # the line above, 0-based
    found = []
    while 0 <= index < len(lines) and lines[index].strip().startswith("#:"):
        found.append(lines[index].strip()[2:].strip())
        index -= 1
    return " ".join(reversed(found)) or None


class SphinxRoles(griffe.Extension):
    """Rewrite Sphinx roles and read ``#:`` comments, once the package is loaded."""

    def _walk(self, obj: griffe.Object, seen: set) -> None:
        if obj.path in seen:
            return
        seen.add(obj.path)
        if obj.is_attribute and obj.docstring is None:
            text = _comment_docstring(obj)
            if text:
                obj.docstring = griffe.Docstring(text, parent=obj)
        if obj.docstring is not None:
            obj.docstring.value = _rewrite(obj, obj.docstring.value)
        for member in list(obj.members.values()):
            if not member.is_alias:
                self._walk(member, seen)

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:  # griffe ≥ 2
        self._walk(pkg, set())

    def on_package_loaded(self, *, pkg: griffe.Module, **kwargs: Any) -> None:  # griffe 1
        self._walk(pkg, set())
