"""The house: the tutorial's files at the root, one package, tools/; imports run one way."""
import ast
import glob
import os
import subprocess

from conftest import ROOT

SCRIPTS = {'train', 'enroll', 'identification', 'verification', 'evaluate', 'demo'}
TUTORIAL_MODULES = {'configure', 'DB_wav_reader', 'SR_Dataset'}
TOOLS = {os.path.splitext(os.path.basename(p))[0]
         for p in glob.glob(os.path.join(ROOT, 'tools', '**', '*.py'), recursive=True)}


def parsed(path: str) -> ast.AST:
    """The syntax tree of a Python file."""
    with open(path, encoding='utf-8') as f:
        return ast.parse(f.read(), path)


def imported(path: str) -> set:
    """Top-level names of the modules a file imports (``a.b`` -> ``a``)."""
    names = set()
    for node in ast.walk(parsed(path)):
        if isinstance(node, ast.Import):
            names |= {alias.name.split('.')[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split('.')[0])
    return names


def files(*patterns: str) -> list:
    return [p for pattern in patterns
            for p in glob.glob(os.path.join(ROOT, pattern), recursive=True)]


def ignored_by_git(entries: set) -> set:
    """The entries .gitignore covers (run outputs such as runs/); none outside a git checkout."""
    try:
        result = subprocess.run(['git', 'check-ignore', '--', *sorted(entries)], cwd=ROOT,
                                capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return set()
    return {line.strip().rstrip('/') for line in result.stdout.splitlines()}


def test_the_root_holds_the_tutorials_files_one_package_tools_recipes_docs():
    entries = {e for e in os.listdir(ROOT) if not e.startswith('.') and e != '__pycache__'}
    entries -= ignored_by_git(entries)
    assert {f[:-3] for f in entries if f.endswith('.py')} == SCRIPTS | TUTORIAL_MODULES
    assert {e for e in entries if not e.endswith('.py')} == {
        'model', 'dvector', 'tools', 'recipes', 'docs', 'tests', 'feat_logfbank_nfilt40',
        'test_wavs', 'model_saved', 'enroll_embeddings', 'model_real', 'requirements.txt',
        'README.md', 'README.ko.md'}


def test_the_tutorials_modules_import_nothing_of_the_package_or_the_scripts():
    for path in files('configure.py', 'DB_wav_reader.py', 'SR_Dataset.py', 'model/**/*.py'):
        bad = imported(path) & ({'dvector'} | SCRIPTS | TOOLS)
        assert not bad, f'{path} imports {bad}'


def test_the_package_never_imports_a_script_or_a_tool():
    for path in files('dvector/**/*.py'):
        bad = imported(path) & (SCRIPTS | TOOLS)
        assert not bad, f'{path} imports {bad}'


def test_no_script_or_tool_imports_another():
    for path in files('*.py', 'tools/**/*.py'):
        name = os.path.splitext(os.path.basename(path))[0]
        if name in TUTORIAL_MODULES:
            continue
        bad = imported(path) & ((SCRIPTS | TOOLS) - {name})
        assert not bad, f'{path} imports {bad}'


# docs/CONTRIBUTING.md "Names": the band count is n_bands, the class count n_classes; these
# were other names for them (the stored key 'filter_bank' of feature_settings is a string)
RETIRED_NAMES = {'feature_dim', 'feature_width', 'filter_bank', 'num_classes'}


def names_in(path: str) -> set:
    """The identifiers of a Python file (not its strings or comments)."""
    found = set()
    for node in ast.walk(parsed(path)):
        if isinstance(node, ast.Name):
            found.add(node.id)
        elif isinstance(node, ast.Attribute):
            found.add(node.attr)
        elif isinstance(node, ast.arg):
            found.add(node.arg)
        elif isinstance(node, ast.keyword) and node.arg:
            found.add(node.arg)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            found.add(node.name)
    return found


def test_one_name_for_the_band_count_and_one_for_the_class_count():
    """Issue 30 item 9: n_bands and n_classes (were also feature_dim, feature_width,
    filter_bank and num_classes)."""
    for path in files('*.py', 'dvector/**/*.py', 'model/**/*.py', 'tools/**/*.py',
                      'tests/**/*.py'):
        old = names_in(path) & RETIRED_NAMES
        assert not old, f'{path} names {old}; say n_bands or n_classes (docs/CONTRIBUTING.md)'
