"""Hardened reading of a metadata document into a namespace-free tree (design guide §2.1).

`load_tree` is the only place metadata bytes are parsed, and the only one that raises `MetadataError`
(the caller then records the call without metadata):

- defusedxml with `forbid_dtd`: no DTD, so no entity expansion ("billion laughs") and no external entity or
  DTD fetch; at most `MAX_METADATA_BYTES`, `MAX_ELEMENTS` elements (real documents hold a few hundred; the
  cap bounds the work a hostile one can cause) and `MAX_DEPTH` levels (checked iteratively: a 256 KiB
  document nests far deeper than Python recursion allows);
- a document whose bytes are not in its declared encoding (Latin-1 declared or defaulted to UTF-8, a
  misspelt encoding name) is read again as text, with a warning;
- a prefix used without its `xmlns:` declaration (`<apkt:ucid>` on its own, seen from SBCs) is declared on
  the root as `urn:hangtar:unbound:<prefix>` and the document read again, with a warning.

The tree: element and attribute names are lowercased local names, so any prefix (`tns:recording`),
`datamode`/`dataMode` and `nameID`/`nameid` read alike; `local` keeps the name as sent. Children in a
namespace other than the document's own are vendor extensions: they go to `Node.foreign` (with their whole
subtree, any namespace), never to `Node.children`, so their names cannot be mistaken for ours.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as DefusedElementTree
from defusedxml import DefusedXmlException

from .dialects import SIPREC_NAMESPACES
from .errors import MetadataError
from .warning_kinds import WarningKind

__all__ = ["MAX_DEPTH", "MAX_ELEMENTS", "MAX_METADATA_BYTES", "UNBOUND_NAMESPACE", "Node", "load_tree"]

MAX_METADATA_BYTES = 256 * 1024
MAX_ELEMENTS = 5000
MAX_DEPTH = 64
UNBOUND_NAMESPACE = "urn:hangtar:unbound:"
_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>")
_USED_PREFIX = re.compile(r"</?([A-Za-z_][\w.\-]*):[A-Za-z_]|\s([A-Za-z_][\w.\-]*):[A-Za-z_][\w.\-]*\s*=")
_DECLARED_PREFIX = re.compile(r"xmlns:([A-Za-z_][\w.\-]*)\s*=")
_ROOT_TAG = re.compile(r"<(?![?!])[^\s/>]+")

Warn = Callable[[WarningKind, str], None]


@dataclass(slots=True)
class Node:
    name: str  # lowercased local name
    local: str  # local name as sent
    namespace: str
    attrs: dict[str, str]  # lowercased local names
    text: str
    source_attrs: dict[str, str] = field(default_factory=dict)  # local names as sent
    children: list[Node] = field(default_factory=list)
    foreign: list[Node] = field(default_factory=list)

    def child(self, *names: str) -> Node | None:
        return next((child for child in self.children if child.name in names), None)

    def child_text(self, *names: str) -> str | None:
        for child in self.children:
            if child.name in names and child.text:
                return child.text
        return None

    def attr(self, *names: str) -> str | None:
        for name in names:
            value = self.attrs.get(name, "").strip()
            if value:
                return value
        return None


def load_tree(xml: bytes, warn: Warn) -> Node:
    """Parse one metadata document; `warn(kind, message)` hears of what was tolerated on the way."""
    return _to_nodes(_load(xml, warn))


def _load(xml: bytes, warn: Warn) -> Element:
    if len(xml) > MAX_METADATA_BYTES:
        raise MetadataError(f"metadata of {len(xml)} bytes exceeds {MAX_METADATA_BYTES}")
    data = xml.strip()
    if not data:
        raise MetadataError("empty metadata")
    try:
        return _parse(data)
    except (ParseError, LookupError) as error:  # LookupError: an encoding Python does not know
        original: Exception = error
    try:
        text, charset = data.decode("utf-8"), "UTF-8"
    except UnicodeDecodeError:
        text, charset = data.decode("latin-1"), "Latin-1"
    if charset == "Latin-1" or isinstance(original, LookupError):
        text = _XML_DECLARATION.sub("", text, count=1)
        try:
            root = _parse(text)
        except ParseError as error:
            original = error
        else:
            warn(WarningKind.ENCODING_MISDECLARED, f"metadata encoding misdeclared, read as {charset}")
            return root
    repaired = _declare_unbound_prefixes(text)
    if repaired is None:
        raise MetadataError(f"metadata is not well-formed XML: {original}") from original
    declared, text = repaired
    try:
        root = _parse(text)
    except ParseError as error:
        raise MetadataError(f"metadata is not well-formed XML: {original}") from error
    warn(WarningKind.UNBOUND_PREFIX, f"namespace prefix {', '.join(declared)} used without a declaration")
    return root


def _parse(data: bytes | str) -> Element:
    try:
        root: Element = DefusedElementTree.fromstring(data, forbid_dtd=True)
    except DefusedXmlException as error:
        raise MetadataError(f"metadata refused: {type(error).__name__}") from error
    return root


def _declare_unbound_prefixes(text: str) -> tuple[list[str], str] | None:
    used = {prefix for match in _USED_PREFIX.finditer(text) for prefix in match.groups() if prefix}
    missing = sorted(used - set(_DECLARED_PREFIX.findall(text)) - {"xml", "xmlns"})
    root = _ROOT_TAG.search(_XML_DECLARATION.sub(lambda m: " " * len(m.group()), text, count=1))
    if not missing or root is None:
        return None
    declarations = "".join(f' xmlns:{prefix}="{UNBOUND_NAMESPACE}{prefix}"' for prefix in missing)
    return missing, text[: root.end()] + declarations + text[root.end() :]


def _split_name(tag: str) -> tuple[str, str]:
    namespace, _, local = tag[1:].rpartition("}") if tag.startswith("{") else ("", "", tag)
    return namespace, local


def _make_node(element: Element) -> Node:
    namespace, local = _split_name(element.tag)
    source_attrs = {_split_name(key)[1]: value for key, value in element.attrib.items()}
    return Node(
        name=local.lower(),
        local=local,
        namespace=namespace,
        attrs={key.lower(): value for key, value in source_attrs.items()},
        text=(element.text or "").strip(),
        source_attrs=source_attrs,
    )


def _to_nodes(root: Element) -> Node:
    top = _make_node(root)
    ours = {top.namespace, "", *SIPREC_NAMESPACES}
    stack: list[tuple[Element, Node, int, bool]] = [(root, top, 1, False)]
    count = 1
    while stack:
        element, node, depth, in_foreign = stack.pop()
        if depth > MAX_DEPTH:
            raise MetadataError(f"metadata nested deeper than {MAX_DEPTH} levels")
        count += len(element)
        if count > MAX_ELEMENTS:
            raise MetadataError(f"metadata has more than {MAX_ELEMENTS} elements")
        for child_element in element:
            child = _make_node(child_element)
            foreign = in_foreign or child.namespace not in ours
            if foreign and not in_foreign:
                node.foreign.append(child)  # a vendor extension block starts here
            else:
                node.children.append(child)
            stack.append((child_element, child, depth + 1, foreign))
    return top
