"""Command-line overrides for the settings at the top of a script (nanoGPT style).

A script defines its settings as plain, commented module variables, then calls
``override_settings(globals())`` in ``main()``. Every setting can then be given on the command
line by the same name: ``--n_epochs 2`` or ``--n_epochs=2``, after an optional recipe file
(``python train.py recipes/tutorial.py --n_epochs 2``): a Python file of ``name = value``
lines, applied first. Values are checked against the type of the default and against the
script's ``SETTING_RULES`` (a range per setting, made with the Rule helpers below) before any
work; unknown names are refused with the list of valid ones; ``--help`` prints every setting
with its current value, its comment in the script and its allowed values (SETTING_RULES).
"""
import ast
import math
import os
import signal
import sys
import textwrap
import threading
from typing import Any, Callable, NamedTuple, Optional

from configure import SetupError  # noqa: F401  (the scripts' one error type, re-exported)
from dvector.distributed import is_main_process

SETTING_TYPES = (bool, int, float, str, list, type(None))


def script_settings(namespace: dict) -> dict:
    """The settings of a script: its public lowercase globals of plain types."""
    return {k: v for k, v in namespace.items()
            if not k.startswith('_') and k.islower() and isinstance(v, SETTING_TYPES)}


def parse_value(name: str, text: str, default: Any) -> Any:
    """Convert ``text`` to the type of ``default`` or raise SetupError naming the setting."""
    if isinstance(default, bool):
        low = text.lower()
        if low in ('1', 'true', 'yes', 'on'):
            return True
        if low in ('0', 'false', 'no', 'off'):
            return False
        raise SetupError(f'--{name}: expected true or false, got {brief(text)}')
    if isinstance(default, list):
        return list_value(name, text, default)
    if default is None or isinstance(default, str):
        return None if default is None and text.lower() == 'none' else text
    try:
        if isinstance(default, int):
            return int(text)
        return float(text)
    except ValueError:
        kind = type(default).__name__
        raise SetupError(f'--{name}: expected {kind}, got {brief(text)}') from None


def list_value(name: str, text: str, default: list) -> list:
    """Comma-separated items, typed by the default's items: numbers when those are numbers
    (an int as int, else a float), else text (an empty default: text)."""
    items = [item for item in text.split(',') if item]
    if not default or not all(is_number(v) for v in default):
        return items
    try:
        return [int(item) if item.strip().lstrip('+-').isdigit() else float(item)
                for item in items]
    except ValueError:
        raise SetupError(f'--{name}: expected comma-separated numbers, got {brief(text)}') \
            from None


def setting_comments(path: str) -> dict:
    """{setting: its comment} from a script's source: the comment on the line of ``name =
    value`` (or, when it has none, the comment line just above it) and the comment-only lines
    that continue it (the source is parsed, nothing in it is executed)."""
    try:
        with open(path, encoding='utf-8') as f:
            lines = f.read().splitlines()
        tree = ast.parse('\n'.join(lines))
    except (OSError, SyntaxError, ValueError, UnicodeDecodeError):
        return {}
    comments = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 \
                and isinstance(node.targets[0], ast.Name) and node.lineno == node.end_lineno:
            line = lines[node.lineno - 1]
            parts = [line[node.end_col_offset:].strip().lstrip('#').strip()]
            for more in lines[node.lineno:]:
                if not more.startswith(' ') or not more.strip().startswith('#'):
                    break  # a continuation is an indented comment-only line
                parts.append(more.strip().lstrip('#').strip())
            if not parts[0] and node.lineno > 1:  # else the comment line just above it
                above = lines[node.lineno - 2]  # a comment of its own, not a continuation
                if above.startswith('#') and not above.startswith('# ---'):
                    parts[0] = above.lstrip('#').strip()
            comments[node.targets[0].id] = ' '.join(p for p in parts if p)
    return comments


def format_help(settings: dict, doc: str = '', rules: dict = None,
                comments: dict = None) -> str:
    """Every setting with its value, its comment in the script and its allowed values."""
    lines = [doc.strip(), '', 'Settings (override with --name value):'] if doc else ['Settings:']
    for name, value in settings.items():
        shown_value = ','.join(map(str, value)) if isinstance(value, list) else repr(value)
        lines.append(f'  --{name} {shown_value}')
        rule = (rules or {}).get(name)
        about = (comments or {}).get(name, '')
        about += ('; ' if about else '') + (f'allowed: {rule.allowed}' if rule else '')
        if about:
            lines += textwrap.wrap(about, 96, initial_indent='      ',
                                   subsequent_indent='      ')
    return '\n'.join(lines)


def brief(value: Any, limit: int = 60) -> str:
    """repr of a value, cut to ``limit`` characters (a message never holds a whole file)."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + '...'


def typed_value(name: str, value: Any, default: Any, where: str) -> Any:
    """A recipe file's value, checked against the type of the setting's default."""
    if isinstance(default, float) and type(value) is int:
        return float(value)
    if isinstance(default, list) and isinstance(value, (list, tuple)):
        return list(value)
    if default is not None and type(value) is not type(default):
        raise SetupError(f'{where}: {name} = {brief(value)} should be a '
                         f'{type(default).__name__}')
    return value


def recipe_values(source: str, path: str) -> dict:
    """The ``name = literal`` assignments of a recipe's text, read with ``ast`` (nothing in the
    file is executed); SetupError naming the first line that is anything else."""
    try:
        tree = ast.parse(source, path)
    except (SyntaxError, ValueError) as err:  # ValueError: a NUL byte in the text
        line = getattr(err, 'lineno', None)
        raise SetupError(f'{path}: not a recipe of name = value lines (cannot parse it'
                         + (f', line {line})' if line else ')')) from None
    values = {}
    for node in tree.body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # a docstring
        target = node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 \
            else None
        if not isinstance(target, ast.Name):
            raise SetupError(f'{path}: not a recipe of name = value lines (line {node.lineno} '
                             'is something else; a recipe holds only settings given literal '
                             'values)')
        try:
            values[target.id] = ast.literal_eval(node.value)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            raise SetupError(f'{path}: line {node.lineno}: {target.id} is not given a literal '
                             "value (a number, 'text', True/False, None or a list of them)") \
                from None
    return values


def read_recipe(path: str, settings: dict) -> dict:
    """The ``name = value`` lines of a recipe file, each a known setting of the right type."""
    try:
        with open(path, encoding='utf-8') as f:
            source = f.read()
    except OSError as err:
        raise SetupError(f'{path}: cannot read the recipe ({err.strerror})') from None
    except UnicodeDecodeError as err:
        raise SetupError(f'{path}: not a recipe (not UTF-8 text at byte {err.start})') from None
    values = recipe_values(source, path)
    unknown = sorted(set(values) - set(settings))
    if unknown:
        raise SetupError(f'{path}: unknown setting {unknown[0]}; valid settings: '
                         + ', '.join(sorted(settings)))
    return {k: typed_value(k, v, settings[k], path) for k, v in values.items()}


def override_settings(namespace: dict, argv: list = None, doc: str = '') -> dict:
    """Apply a recipe file (an optional first argument ending in .py), then ``--name value``
    overrides from argv, to the script's globals; return the settings. The names given (in
    the recipe or on the command line, whatever their values) go to the script's
    ``GIVEN_SETTINGS`` (see ``was_chosen``)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    settings = script_settings(namespace)
    given = set()
    if argv and argv[0].endswith('.py'):
        recipe = read_recipe(argv.pop(0), settings)
        settings.update(recipe)
        given.update(recipe)
    i, on_line = 0, set()
    while i < len(argv):
        arg = argv[i]
        if arg in ('-h', '--help'):
            print(format_help(settings, doc, namespace.get('SETTING_RULES', {}),
                              setting_comments(namespace.get('__file__', ''))))
            sys.exit(0)
        if not arg.startswith('--'):
            raise SetupError(f'unexpected argument {brief(arg)}: settings are given as '
                             '--name value')
        name, sep, text = arg[2:].partition('=')
        if name not in settings:
            raise SetupError(f'unknown setting --{name}; valid settings: '
                             + ', '.join(sorted(settings)))
        if not sep:
            if i + 1 >= len(argv):
                raise SetupError(f'--{name}: missing value')
            i += 1
            text = argv[i]
        if name in on_line:  # the last would win without a word (a careless copy or edit)
            raise SetupError(f'--{name} given twice on the command line; give it once')
        on_line.add(name)
        settings[name] = parse_value(name, text, settings[name])
        given.add(name)
        i += 1
    check_settings(settings, namespace.get('SETTING_RULES', {}))
    namespace.update(settings)
    namespace['GIVEN_SETTINGS'] = frozenset(given)
    return settings


def was_chosen(namespace: dict, name: str, default: Any) -> bool:
    """Whether the user chose a script's setting: gave it (command line or recipe) or edited
    its line in the script to another value than ``default``."""
    return name in namespace.get('GIVEN_SETTINGS', ()) or namespace.get(name) != default


# ---- ranges: every setting of every script has one (SETTING_RULES beside the settings) ------

class Rule(NamedTuple):
    """A setting's allowed values: ``check(value)`` says whether a value is allowed, and
    ``allowed`` describes them in the error line; ``problem(value)``, when given, says what is
    wrong with a refused value instead ('is a file, not a folder')."""
    check: Callable[[Any], bool]
    allowed: str
    problem: Optional[Callable[[Any], str]] = None


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value)


def shown(x: float) -> str:
    """A bound as a person writes it: 4294967295, not 4.29497e+09."""
    return str(int(x)) if float(x).is_integer() else f'{x:g}'


def at_least(low: float) -> Rule:
    return Rule(lambda v: is_number(v) and v >= low, f'a number >= {shown(low)}')


def between(low: float, high: float) -> Rule:
    return Rule(lambda v: is_number(v) and low <= v <= high,
                f'a number from {shown(low)} to {shown(high)}')


def above(low: float, high: float = math.inf) -> Rule:
    text = f'> {shown(low)}' + (f' and <= {shown(high)}' if high < math.inf else '')
    return Rule(lambda v: is_number(v) and low < v <= high, f'a number {text}')


def zero_or_at_least(low: float) -> Rule:
    """0 (a setting's 'off' or 'whole') or a number >= ``low``."""
    return Rule(lambda v: is_number(v) and (v == 0 or v >= low), f'0 or a number >= {shown(low)}')


def one_of(*choices: Any) -> Rule:
    return Rule(lambda v: v in choices, 'one of ' + ', '.join(map(str, choices)))


def each(rule: Rule) -> Rule:
    """A list whose every item obeys ``rule`` (list items arrive as text from the command
    line: numbers are converted first)."""
    def check(values: Any) -> bool:
        try:
            return all(rule.check(float(v)) for v in values)
        except (TypeError, ValueError):
            return False
    return Rule(check, f'comma-separated numbers, each {rule.allowed}')


FLAG = Rule(lambda v: isinstance(v, bool), 'true or false')
# pieces of fewer frames embed every utterance alike (every score near 1.0; issue 27)
MIN_PIECE_FRAMES = 10
PIECE_FRAMES = zero_or_at_least(MIN_PIECE_FRAMES)  # test_frames: 0 = whole utterances
NUMBER = Rule(is_number, 'a finite number')
TEXT = Rule(lambda v: isinstance(v, str) and '\0' not in v, 'text')
NAME = Rule(lambda v: isinstance(v, str) and v.strip() != '' and '\0' not in v,
            'a non-empty name')


def folder_problem(value: Any) -> str:
    """What makes an existing path unusable as a folder setting ('' when nothing does): a file
    given for a folder was reported as 'not found' further on, or read as an empty folder."""
    if not isinstance(value, str) or not value or '\0' in value:
        return ''
    if os.path.isfile(value):
        return 'is a file, not a folder (give the folder that holds it)'
    if os.path.exists(value) and not os.path.isdir(value):
        return 'is not a folder (a pipe, socket or device)'
    return ''


# a folder (it may not exist yet); OPTIONAL_FOLDER also takes '' (the setting is off)
FOLDER = Rule(lambda v: NAME.check(v) and not folder_problem(v), 'a folder', folder_problem)
OPTIONAL_FOLDER = Rule(lambda v: v == '' or FOLDER.check(v), "a folder or '' (none)",
                       folder_problem)


def file_problem(value: Any) -> str:
    """What makes a path unusable as a file setting ('' when nothing does)."""
    if not isinstance(value, str) or '\0' in value:
        return ''
    if os.path.isdir(value):
        return 'is a folder, not a file (give the file inside it)'
    return '' if os.path.isfile(value) else 'no such file'


# an existing file, or '' (the setting is off)
OPTIONAL_FILE = Rule(lambda v: v == '' or (NAME.check(v) and not file_problem(v)),
                     "a file or '' (none)", file_problem)
NAMES = Rule(lambda v: isinstance(v, list) and all(isinstance(s, str) and s for s in v),
             'comma-separated names')


def check_settings(settings: dict, rules: dict) -> None:
    """SetupError naming the first setting outside its range (before any work is done)."""
    for name, value in settings.items():
        rule = rules.get(name)
        if rule is not None and not rule.check(value):
            given = ','.join(map(str, value)) if isinstance(value, list) else value
            problem = rule.problem(value) if rule.problem else ''
            raise SetupError(f'--{name} {given}: {problem or "expected " + rule.allowed}')


def stop_on_terminate(signum: int, frame: Any) -> None:
    """``kill`` (SIGTERM) as Ctrl-C: the file being written is removed (atomic_path's cleanup
    runs), not left as a hidden temporary file."""
    raise KeyboardInterrupt


def default_terminate_in_child() -> None:
    """A process forked from a script (a multiprocessing pool's worker, which the pool stops
    with SIGTERM when its work is done) dies on SIGTERM at once, as multiprocessing expects:
    a handler run later, between bytecodes, could find the worker holding the pool's queue
    lock (a traceback, or a pool that never finishes)."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def quiet_stdout() -> None:
    """Point stdout at /dev/null, so that Python's flush of it at exit does not print another
    BrokenPipeError (the way Python's documentation gives for SIGPIPE)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is not a file (a test's capture): nothing to flush
        pass
    finally:
        os.close(devnull)


def run(main: Callable[[], Any]) -> None:
    """Run a script's main(); a SetupError becomes one clear line on stderr and exit status 1;
    Ctrl-C and kill (SIGTERM) stop it with the files already written complete."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, stop_on_terminate)
        if not getattr(default_terminate_in_child, 'registered', False):
            os.register_at_fork(after_in_child=default_terminate_in_child)
            default_terminate_in_child.registered = True
    try:
        main()
    except BrokenPipeError:  # stdout closed by its reader (| head): the reader wanted no more
        quiet_stdout()
        sys.exit(141)  # as a shell reports a command ended by SIGPIPE (128 + 13)
    except SetupError as err:
        if is_main_process():  # under torchrun, one message, not one per rank
            print(f'error: {err}', file=sys.stderr)  # one line: SetupError keeps it so
        sys.exit(1)
    except KeyboardInterrupt:
        print('interrupted: files already written are complete', file=sys.stderr)
        sys.exit(130)
