"""Check that every `# Copied from` block in the repository equals its source.

Shipped model code (``configuration_*.py``, ``modeling_*.py`` and their sibling imports) cannot import ``hf_erc`` nor
another model's folder, so a piece two models need lives in both, the copy marked as in ``transformers``::

    # Copied from hf_erc.models.telme.modeling_telme.TelMETextTeacher with TelME->MAGTKD, TextTeacher->TextModel
    class MAGTKDTextModel(MAGTKDPreTrainedModel):
        ...

The marker names the source by its dotted path (module, then class, function, method, property or module-level
assignment); ``with A->B, C->D`` lists plain string replacements applied, in order, to the source. The copied block
is the whole statement right after the marker, decorators included. Sources are found by parsing the files with
``ast``; nothing is imported, so the check runs without the package's dependencies.

Usage::

    python scripts/check_copies.py          # report differences, exit 1 if any
    python scripts/check_copies.py --fix    # rewrite each copy from its source
"""

from __future__ import annotations

import argparse
import ast
import io
import re
import sys
import tokenize
from dataclasses import dataclass
from pathlib import Path


# Folders scanned for markers, relative to the repository root.
SEARCH_DIRS = ("src/hf_erc", "scripts")
# Folders dotted names resolve against: `hf_erc.x.y` -> `src/hf_erc/x/y.py`, `scripts.x` -> `scripts/x.py`.
SOURCE_ROOTS = ("src", ".")

_MARKER = re.compile(r"^#\s*Copied from\s+(?P<name>[A-Za-z_][\w.]*)(?:\s+with\s+(?P<renames>.+?))?\s*$")
_DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


@dataclass
class Copy:
    """One `# Copied from` marker and the block it marks (1-based, inclusive line numbers)."""

    path: Path
    marker_line: int
    indent: str
    name: str
    renames: list[tuple[str, str]]
    start: int | None = None
    end: int | None = None


@dataclass
class _ParsedFile:
    lines: list[str]
    tree: ast.Module | None


class _Sources:
    """Parsed files, each read once."""

    def __init__(self, repo_root: Path):
        self.repo_root = repo_root
        self._files: dict[Path, _ParsedFile] = {}

    def parse(self, path: Path) -> _ParsedFile:
        if path not in self._files:
            text = path.read_text(encoding="utf-8")
            try:
                tree = ast.parse(text, filename=str(path))
            except SyntaxError:
                tree = None
            self._files[path] = _ParsedFile(text.splitlines(), tree)
        return self._files[path]

    def resolve(self, dotted: str) -> tuple[Path, ast.AST] | str:
        """The file and node `dotted` names, or a sentence saying why it cannot be found."""
        parts = dotted.split(".")
        for split in range(len(parts) - 1, 0, -1):
            for root in SOURCE_ROOTS:
                base = self.repo_root / root
                module, package = base.joinpath(*parts[:split]), base.joinpath(*parts[:split], "__init__.py")
                for candidate in (module.with_suffix(".py"), package):
                    if candidate.is_file():
                        node = self._find(candidate, parts[split:])
                        if node is None:
                            return f"no {'.'.join(parts[split:])} in {self._relative(candidate)}"
                        return candidate, node
        return f"no module file for {dotted}"

    def _find(self, path: Path, names: list[str]) -> ast.AST | None:
        tree = self.parse(path).tree
        if tree is None:
            return None
        body, node = tree.body, None
        for name in names:
            node = next((child for child in body if _defines(child, name)), None)
            if node is None:
                return None
            body = node.body if isinstance(node, _DEFINITIONS) else []
        return node

    def _relative(self, path: Path) -> str:
        try:
            return path.relative_to(self.repo_root).as_posix()
        except ValueError:
            return str(path)


def _defines(node: ast.AST, name: str) -> bool:
    """Whether the statement `node` defines `name` (a def, a class, or an assignment to it)."""
    if isinstance(node, _DEFINITIONS):
        return node.name == name
    if isinstance(node, ast.Assign):
        return any(isinstance(target, ast.Name) and target.id == name for target in node.targets)
    if isinstance(node, ast.AnnAssign):
        return isinstance(node.target, ast.Name) and node.target.id == name
    return False


def _first_line(node: ast.AST) -> int:
    """First line of a statement, decorators included."""
    decorators = getattr(node, "decorator_list", [])
    return min([node.lineno] + [decorator.lineno for decorator in decorators])


def _statements(tree: ast.Module):
    """Every statement of a module, nested ones included."""
    for node in ast.walk(tree):
        if isinstance(node, ast.stmt):
            yield node


def find_copies(path: Path, sources: _Sources) -> list[Copy]:
    """The `# Copied from` markers of one file (comments only, not text inside strings) and their blocks."""
    parsed = sources.parse(path)
    text = "\n".join(parsed.lines) + "\n"
    copies = []
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError):
        return copies
    for token in tokens:
        if token.type != tokenize.COMMENT or token.line.strip() != token.string.strip():
            continue
        match = _MARKER.match(token.string.strip())
        if match is None:
            continue
        renames = []
        for rename in (match["renames"] or "").split(","):
            if "->" in rename:
                old, new = rename.split("->", 1)
                renames.append((old.strip(), new.strip()))
        line = token.start[0]
        indent = token.line[: len(token.line) - len(token.line.lstrip())]
        copies.append(Copy(path, line, indent, match["name"], renames))
    if parsed.tree is not None:
        starts = {}
        for node in _statements(parsed.tree):
            starts.setdefault(_first_line(node), node)
        for copy in copies:
            node = starts.get(copy.marker_line + 1)
            if node is not None:
                copy.start, copy.end = copy.marker_line + 1, node.end_lineno
    return copies


def expected_block(copy: Copy, source_lines: list[str], node: ast.AST) -> list[str]:
    """The source block with the renames applied, re-indented to the marker's indentation."""
    block = source_lines[_first_line(node) - 1 : node.end_lineno]
    source_indent = block[0][: len(block[0]) - len(block[0].lstrip())]
    expected = []
    for line in block:
        if not line.strip():
            expected.append("")
        elif line.startswith(source_indent):
            expected.append(copy.indent + line[len(source_indent) :])
        else:
            expected.append(line)
    text = "\n".join(expected)
    for old, new in copy.renames:
        text = text.replace(old, new)
    return text.split("\n")


def _first_difference(expected: list[str], actual: list[str]) -> int | None:
    for index in range(max(len(expected), len(actual))):
        want = expected[index].rstrip() if index < len(expected) else None
        got = actual[index].rstrip() if index < len(actual) else None
        if want != got:
            return index
    return None


def _shown(lines: list[str], index: int) -> str:
    return repr(lines[index].rstrip()) if index < len(lines) else "<end of block>"


def run_check(repo_root, fix: bool = False, search_dirs=SEARCH_DIRS) -> tuple[int, list[str]]:
    """Check (or with `fix`, rewrite) every copy under `search_dirs`; returns the number of copies and the problems
    (with `fix`, only those it could not fix)."""
    repo_root = Path(repo_root).resolve()
    sources = _Sources(repo_root)
    files = sorted(
        path for folder in search_dirs if (repo_root / folder).is_dir() for path in (repo_root / folder).rglob("*.py")
    )
    count, problems = 0, []
    for path in files:
        relative = path.relative_to(repo_root).as_posix()
        replacements = []
        for copy in find_copies(path, sources):
            count += 1
            where = f"{relative}:{copy.marker_line}"
            if copy.start is None:
                problems.append(f"{where}: '# Copied from {copy.name}' must be followed by a def, class or assignment")
                continue
            found = sources.resolve(copy.name)
            if isinstance(found, str):
                problems.append(f"{where}: cannot find {copy.name} ({found})")
                continue
            source_path, node = found
            expected = expected_block(copy, sources.parse(source_path).lines, node)
            actual = sources.parse(path).lines[copy.start - 1 : copy.end]
            index = _first_difference(expected, actual)
            if index is None:
                continue
            if fix:
                replacements.append((copy.start, copy.end, expected))
                continue
            problems.append(
                f"{where}: copy of {copy.name} differs from its source at line {copy.start + index}: "
                f"expected {_shown(expected, index)} got {_shown(actual, index)}"
            )
        if replacements:
            _rewrite(path, replacements)
            print(f"{relative}: rewrote {len(replacements)} copied block(s) from their source")
    return count, problems


def _rewrite(path: Path, replacements: list[tuple[int, int, list[str]]]) -> None:
    """Replace blocks from the bottom up (so earlier line numbers stay valid); a block inside one already rewritten
    is skipped (a second run picks it up)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    lowest = None
    for start, end, expected in sorted(replacements, reverse=True):
        if lowest is not None and end >= lowest:
            continue
        lines[start - 1 : end] = expected
        lowest = start
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def check_copies(repo_root) -> list[str]:
    """The problems of every `# Copied from` block of the repository at `repo_root` (empty when all are identical)."""
    return run_check(repo_root)[1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fix", action="store_true", help="rewrite each differing copy from its source")
    parser.add_argument("--repo-root", default=Path(__file__).resolve().parents[1], help="repository root")
    args = parser.parse_args(argv)
    count, problems = run_check(args.repo_root, fix=args.fix)
    for problem in problems:
        print(problem)
    if problems:
        print(f"{count} copies checked, {len(problems)} problem(s)")
        return 1
    print(f"{count} copies checked")
    return 0


if __name__ == "__main__":
    sys.exit(main())
