"""Sphinx extension: the library reference, generated from ``hdlcore``'s own ``__all__`` and docstrings.

The directive ::

    ```{hdl-api} hdlcore.matrix
    ```

documents every name in ``hdlcore.matrix.__all__`` (functions, classes, constants) with autodoc, in
the order of the package's modules, each followed by the chapters whose notebooks call it
(``:names: a, b`` restricts it to some names). A name added
to a subpackage's ``__all__`` appears on the next build without editing any page; a test checks that
every public name of ``hd.__all__`` has an entry.
"""

from __future__ import annotations

import importlib
import inspect
import json
import re
import sys
from functools import cache
from pathlib import Path

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.pycode import ModuleAnalyzer
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

ROOT = Path(__file__).resolve().parents[1]
logger = logging.getLogger(__name__)


@cache
def chapter_sources() -> dict[str, tuple[str, str]]:
    """docname -> (title, code of the chapter's notebook)."""
    out = {}
    for path in sorted((ROOT / "chapters").glob("*.ipynb")):
        nb = json.loads(path.read_text())
        code = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
        title = next((line.lstrip("# ").strip() for c in nb["cells"] if c["cell_type"] == "markdown"
                      for line in "".join(c["source"]).splitlines() if line.startswith("# ")), path.stem)
        out[f"chapters/{path.stem}"] = (title, code)
    return out


def chapters_using(name: str, module: str) -> list[str]:
    """Docnames of the chapters whose code refers to ``name`` (``hd.name``, ``hd.sub.name`` or imported)."""
    short = module.rpartition(".")[2]
    word = re.escape(name)
    pattern = re.compile(rf"(\bhd\.(?:{re.escape(short)}\.)?{word}\b)|(\bimport\b[^\n]*\b{word}\b)")
    return [doc for doc, (_, code) in chapter_sources().items() if pattern.search(code)]


def directive_for(obj: object) -> str:
    if inspect.isclass(obj):
        return "autoclass"
    if callable(obj):
        return "autofunction"
    return "autodata"


def defining_module(obj: object, fallback: str, name: str | None = None) -> str:
    """The module that defines ``obj``; for a constant, the module of ``fallback`` listing ``name``."""
    module = getattr(obj, "__module__", None)
    if callable(obj) and isinstance(module, str) and module.startswith("hdlcore"):
        return module
    if name is not None:
        for mod_name, mod in sorted(sys.modules.items()):
            if mod_name.startswith(fallback + ".") and name in getattr(mod, "__all__", ()):
                return mod_name
    return fallback


class ApiDirective(SphinxDirective):
    required_arguments = 1
    has_content = False
    option_spec = {"names": lambda arg: [n.strip() for n in arg.split(",") if n.strip()]}

    def run(self):
        package_name = self.arguments[0].strip()
        try:
            package = importlib.import_module(package_name)
        except ImportError as exc:
            raise self.error(f"hdl-api: cannot import {package_name!r}: {exc}") from exc
        names = self.options.get("names") or getattr(package, "__all__", None)
        if not names:
            raise self.error(f"hdl-api: {package_name!r} has no __all__")
        # Group the names by the module that defines them, in the order they first appear.
        groups: dict[str, list[str]] = {}
        for name in names:
            obj = getattr(package, name)
            if not inspect.ismodule(obj):
                groups.setdefault(defining_module(obj, package_name, name), []).append(name)
        block: list[str] = []
        for module_name, members in groups.items():
            if len(groups) > 1:
                block += [f"## `{module_name}`", ""]
            rst = [] if self.options.get("names") else [f".. automodule:: {module_name}",
                                                        "   :no-members:", ""]
            for name in members:
                obj = getattr(package, name)
                kind = directive_for(obj)
                rst.append(f".. {kind}:: {module_name}.{name}")
                if kind == "autoclass":
                    rst.append("   :members:")
                if kind == "autodata":
                    rst.append("   :no-value:")
                    if ("", name) not in ModuleAnalyzer.for_module(module_name).find_attr_docs():
                        logger.warning(f"hdl-api: {module_name}.{name} is public but has no '#:' comment "
                                       "to document it", location=(self.env.docname, self.lineno))
                rst.append("")
                used = chapters_using(name, package_name)
                if used:
                    rst += ["   *Used in* " + ", ".join(f":doc:`/{doc}`" for doc in used) + ".", ""]
            # The page is MyST; autodoc's output and the docstrings are reStructuredText.
            block += ["```{eval-rst}", *rst, "```", ""]
        container = nodes.container(classes=["hdl-api"])
        nested_parse_with_titles(self.state, StringList(block, source=package_name), container)
        return container.children


def resolve_hdlcore(app, env, node, contnode):
    """Resolve ``hdlcore.train`` or ``hdlcore.matrix.norm_pair`` to where the object is documented.

    Docstrings refer to the flat API (``hdlcore.grow``) or to a subpackage; the reference documents
    each object once, under the module that defines it.
    """
    if node.get("refdomain") != "py":
        return None
    target = node.get("reftarget", "")
    if not target.startswith("hdlcore"):  # relative to the docstring's module: `train`, `EXACT_SIZE_LIMIT`
        context = node.get("py:module") or ""
        if not context.startswith("hdlcore"):
            return None
        module = importlib.import_module(context)
        if hasattr(module, target.split(".")[0]):
            target = f"{context}.{target}"
        elif target.split(".")[0] in getattr(importlib.import_module("hdlcore"), "__all__", ()):
            target = f"hdlcore.{target}"  # the flat API: `train` in a docstring of hdlcore.networks.proximal
        else:
            return None
    domain = env.get_domain("py")
    parts = target.split(".")
    obj, owner = importlib.import_module(parts[0]), parts[0]
    try:
        for i, part in enumerate(parts[1:], 1):
            try:
                obj = getattr(obj, part)
            except AttributeError:
                obj = importlib.import_module(".".join(parts[: i + 1]))
            if inspect.ismodule(obj):
                owner = obj.__name__
    except ImportError:
        return None
    if inspect.ismodule(obj):
        canonical = obj.__name__
    elif callable(obj):
        canonical = f"{defining_module(obj, owner)}.{getattr(obj, '__qualname__', parts[-1])}"
    else:
        canonical = f"{defining_module(obj, owner, parts[-1])}.{parts[-1]}"
    entry = domain.objects.get(canonical) or domain.modules.get(canonical)
    if entry is None:
        return None
    from sphinx.util.nodes import make_refnode

    return make_refnode(app.builder, node["refdoc"], entry.docname, entry.node_id, contnode, canonical)


def setup(app):
    app.add_directive("hdl-api", ApiDirective)
    app.connect("missing-reference", resolve_hdlcore)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
