"""Keep the chapters' notebooks in the book's shape.

    python tools/notebooks.py fix chapters/*.ipynb     # canonical first cell, outputs stripped
    python tools/notebooks.py check                    # report problems (exit 1 if any)
    python tools/notebooks.py from-py SRC.py DEST.ipynb   # jupytext percent script -> notebook

Every chapter opens with its title (a markdown cell starting with ``# ``), then the Colab
bootstrap cell rendered from ``_config.yml``'s repository URL (the one place that names the
repository), hidden behind a toggle, then a setup cell that calls ``hd.notebook.setup``; it is
stored without outputs. The bootstrap cell follows the title so that the site shows the title
first and the toggle below it; on Colab it still runs before any other code. Code cells are
formatted to :data:`NOTEBOOK_LINE_LENGTH` characters, the width of the book's code column.
``tests/test_notebooks_static.py`` runs the same checks.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]

BOOTSTRAP = """\
# Colab or a fresh environment: use the installed hdlcore, or install it
# from the repository. Only what is missing is installed: torch and numpy
# already present are never reinstalled.
try:
    import hdlcore  # noqa: F401
except ImportError:
    %pip install --quiet \\
        "hdlcore[book] @ git+{url}@{branch}\""""

KEEP_CELL_METADATA = {"tags", "mystnb"}


def repository() -> tuple[str, str]:
    """The repository URL and branch, from ``_config.yml``."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    return config["repository"]["url"], config["repository"].get("branch", "main")


def bootstrap_source() -> str:
    url, branch = repository()
    return BOOTSTRAP.format(url=url, branch=branch)


def is_bootstrap(cell) -> bool:
    """Whether a cell is a bootstrap cell (any version of it)."""
    return cell.cell_type == "code" and "import hdlcore" in cell.source and "%pip" in cell.source


def is_title(cell) -> bool:
    """Whether a cell is a markdown cell that opens with the page's title (``# ...``)."""
    return cell.cell_type == "markdown" and re.match(r"#\s+\S", cell.source.lstrip()) is not None


def chapters() -> list[Path]:
    return sorted((ROOT / "chapters").glob("*.ipynb"))


def problems(path: Path) -> list[str]:
    """What is wrong with one notebook (empty when it is in shape)."""
    nb = nbformat.read(path, as_version=4)
    out = []
    cells = nb.cells
    if len(cells) < 3:
        return [f"{path.name}: fewer than three cells"]
    if not is_title(cells[0]):
        out.append(f"{path.name}: the first cell is not a markdown cell opening with the "
                   "chapter's title ('# ...')")
    boot = cells[1]
    if boot.cell_type != "code" or boot.source.strip() != bootstrap_source().strip():
        out.append(f"{path.name}: the cell after the title is not the bootstrap cell "
                   "(run: python tools/notebooks.py fix)")
    elif boot.metadata.get("tags") != ["hide-cell"]:
        out.append(f"{path.name}: the bootstrap cell is not tagged hide-cell")
    if sum(is_bootstrap(c) for c in cells) > 1:
        out.append(f"{path.name}: more than one bootstrap cell")
    setup_cell = next((c for c in cells[2:] if c.cell_type == "code"), None)
    if setup_cell is None or not re.search(r"hd\.notebook\.setup\(", setup_cell.source):
        out.append(f"{path.name}: the first code cell after the bootstrap does not call "
                   "hd.notebook.setup(...)")
    for i, cell in enumerate(cells):
        if cell.cell_type != "code":
            continue
        if cell.get("outputs"):
            out.append(f"{path.name}: cell {i} has stored outputs")
        if cell.get("execution_count") is not None:
            out.append(f"{path.name}: cell {i} has an execution count")
    return out


def fix(path: Path) -> None:
    """Write the canonical bootstrap cell right after the title, strip outputs and volatile
    metadata, and format the code to the column's width."""
    nb = nbformat.read(path, as_version=4)
    boot = nbformat.v4.new_code_cell(bootstrap_source(), metadata={"tags": ["hide-cell"]})
    nb.cells = [c for c in nb.cells if not is_bootstrap(c)]
    title = next((i for i, c in enumerate(nb.cells) if is_title(c)), None)
    nb.cells.insert(0 if title is None else title + 1, boot)
    for cell in nb.cells:
        cell.metadata = {k: v for k, v in cell.metadata.items() if k in KEEP_CELL_METADATA}
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    for index, cell in enumerate(nb.cells):  # stable ids keep diffs readable
        cell["id"] = _cell_id(path, index)
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    nbformat.validator.normalize(nb)
    nb.nbformat, nb.nbformat_minor = 4, 5
    nbformat.write(nb, path)
    _format_code(path)


#: Code in the book is read in a narrow column: format it shorter than the library's code.
#: At 1400 px the site's code column holds 85 characters of its monospace font (750 px wide,
#: 16 px padding each side, 8.43 px a character, measured in Chromium); tests/test_site.py
#: checks that no code line needs a sideways scroll.
NOTEBOOK_LINE_LENGTH = 84


def _format_code(path: Path) -> None:
    """Format the notebook's code cells to :data:`NOTEBOOK_LINE_LENGTH`: first black splits the
    string literals that are too long (implicit concatenation; black checks that the code's
    AST is unchanged), then ruff formats everything in the book's style. Each step is skipped
    if its tool is not installed."""
    _split_long_strings(path)
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff:
        subprocess.run([ruff, "format", "--quiet", f"--line-length={NOTEBOOK_LINE_LENGTH}", str(path)],
                       check=True)


def _split_long_strings(path: Path) -> None:
    """Split string literals longer than the column with black's string processing (cells
    with IPython magics, which black cannot parse, are left alone)."""
    try:
        import black
    except ImportError:
        return
    mode = black.Mode(line_length=NOTEBOOK_LINE_LENGTH, preview=True,
                      enabled_features={black.Preview.string_processing})
    nb = nbformat.read(path, as_version=4)
    changed = False
    for cell in nb.cells:
        if cell.cell_type != "code" or not any(len(line) > NOTEBOOK_LINE_LENGTH
                                                for line in cell.source.splitlines()):
            continue
        try:
            new = black.format_str(cell.source, mode=mode).rstrip("\n")
        except black.parsing.InvalidInput:
            continue
        black.assert_equivalent(cell.source, new)
        if new != cell.source:
            cell.source, changed = new, True
    if changed:
        nbformat.write(nb, path)


def _cell_id(path: Path, index: int) -> str:
    stem = re.sub(r"[^a-z0-9]", "", path.stem.lower())[:12]
    return f"{stem}-{index:03d}"


def from_py(src: Path, dest: Path) -> None:
    import jupytext

    nb = jupytext.read(src)
    jupytext.write(nb, dest, fmt="ipynb")
    fix(dest)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("fix", "check", "from-py"):
        print(__doc__)
        return 2
    if argv[0] == "from-py":
        from_py(Path(argv[1]), Path(argv[2]))
        return 0
    paths = [Path(p) for p in argv[1:]] or chapters()
    if argv[0] == "fix":
        for p in paths:
            fix(p)
        return 0
    found = [msg for p in paths for msg in problems(p)]
    print("\n".join(found) if found else f"{len(paths)} notebooks in shape")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
