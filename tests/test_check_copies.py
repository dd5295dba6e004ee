"""scripts/check_copies.py: the repository's `# Copied from` blocks equal their sources, and the checker itself."""

import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest


REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "scripts" / "check_copies.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("check_copies", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


check_copies_module = _load_script()
check_copies = check_copies_module.check_copies


def test_repository_copies_are_identical():
    """Every copy in src/hf_erc and scripts/ equals its source (transformers' `check_copies` convention)."""
    count, problems = check_copies_module.run_check(REPO_ROOT)
    assert not problems, "\n".join(problems + ["Run `python scripts/check_copies.py --fix` to rewrite the copies."])
    # The copies shipped in MAGTKD's and CMATH's folders (TelME's stage models, SDT's attention, the losses) are seen.
    assert count >= 25


def test_command_line_summary():
    result = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith("copies checked")


# --- the checker on a small tree -------------------------------------------------------------------------
SOURCE = '''\
"""A source module."""

SCALE = 2.0


def double(x):
    """Twice `x`."""
    return x * SCALE


class FooModel:
    """A model."""

    @property
    def size(self):
        """The size of a Foo."""
        return FooModel.base + 1

    def forward(self, x):
        return double(x)
'''


def make_tree(root, copy_text):
    """A repository with `src/hf_erc/source.py` and `src/hf_erc/copy.py` holding `copy_text`."""
    package = root / "src" / "hf_erc"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "source.py").write_text(SOURCE)
    (package / "copy.py").write_text(textwrap.dedent(copy_text))
    return root


IDENTICAL = '''
    # Copied from hf_erc.source.double
    def double(x):
        """Twice `x`."""
        return x * SCALE
'''


def test_identical_copy_passes(tmp_path):
    make_tree(tmp_path, IDENTICAL)
    assert check_copies(tmp_path) == []
    assert check_copies_module.run_check(tmp_path)[0] == 1


def test_extra_line_at_the_end_of_the_block_fails(tmp_path):
    # The old MAGTKD test compared only the source's length of text after the marker: this passed.
    make_tree(tmp_path, IDENTICAL + "        x = x + 1\n")
    (problem,) = check_copies(tmp_path)
    assert problem.startswith("src/hf_erc/copy.py:2: copy of hf_erc.source.double differs from its source at line 6")
    assert "got '    x = x + 1'" in problem


def test_changed_line_is_named(tmp_path):
    make_tree(tmp_path, IDENTICAL.replace("x * SCALE", "x * 3"))
    (problem,) = check_copies(tmp_path)
    assert "at line 5: expected '    return x * SCALE' got '    return x * 3'" in problem


def test_renames_are_applied_in_order(tmp_path):
    make_tree(
        tmp_path,
        '''
        class Holder:
            # Copied from hf_erc.source.FooModel.size with FooModel->BarModel, Foo->Bar
            @property
            def size(self):
                """The size of a Bar."""
                return BarModel.base + 1
        ''',
    )
    assert check_copies(tmp_path) == []
    # Without the renames the copy differs.
    (tmp_path / "src/hf_erc/copy.py").write_text(
        (tmp_path / "src/hf_erc/copy.py").read_text().replace(" with FooModel->BarModel, Foo->Bar", "")
    )
    (problem,) = check_copies(tmp_path)
    assert "copy of hf_erc.source.FooModel.size differs" in problem and "The size of a Foo" in problem


def test_method_and_class_sources(tmp_path):
    make_tree(
        tmp_path,
        '''
        class Other:
            # Copied from hf_erc.source.FooModel.forward
            def forward(self, x):
                return double(x)


        # Copied from hf_erc.source.FooModel
        class FooModel:
            """A model."""

            @property
            def size(self):
                """The size of a Foo."""
                return FooModel.base + 1

            def forward(self, x):
                return double(x)


        # Copied from hf_erc.source.SCALE
        SCALE = 2.0
        ''',
    )
    assert check_copies(tmp_path) == []
    assert check_copies_module.run_check(tmp_path)[0] == 3


def test_missing_source(tmp_path):
    make_tree(tmp_path, IDENTICAL.replace("hf_erc.source.double", "hf_erc.source.triple"))
    (problem,) = check_copies(tmp_path)
    assert problem.startswith("src/hf_erc/copy.py:2: cannot find hf_erc.source.triple")
    make_tree(tmp_path / "other", IDENTICAL.replace("hf_erc.source.double", "hf_erc.nowhere.double"))
    (problem,) = check_copies(tmp_path / "other")
    assert "cannot find hf_erc.nowhere.double" in problem


def test_markers_in_strings_are_ignored_and_a_marker_needs_a_block(tmp_path):
    make_tree(
        tmp_path,
        '''
        TEXT = """
        # Copied from hf_erc.source.nothing
        """

        # Copied from hf_erc.source.double

        x = 1
        ''',
    )
    (problem,) = check_copies(tmp_path)
    assert problem.startswith("src/hf_erc/copy.py:6:") and "must be followed by a def" in problem


def test_fix_rewrites_the_copy(tmp_path):
    changed = IDENTICAL.replace("x * SCALE", "x * 3") + "    pass\n"
    make_tree(tmp_path, "class Other:\n" + textwrap.indent(changed, "    "))
    assert len(check_copies(tmp_path)) == 1
    count, problems = check_copies_module.run_check(tmp_path, fix=True)
    assert (count, problems) == (1, [])
    assert check_copies(tmp_path) == []
    assert "        return x * SCALE\n" in (tmp_path / "src/hf_erc/copy.py").read_text()


@pytest.mark.parametrize("argv, code", [([], 1), (["--fix"], 0)])
def test_exit_codes(tmp_path, argv, code, capsys):
    make_tree(tmp_path, IDENTICAL + "        x = x + 1\n")
    assert check_copies_module.main([*argv, "--repo-root", str(tmp_path)]) == code
    output = capsys.readouterr().out
    assert "1 copies checked" in output
