import subprocess
import sys

import pytest

from configure import SetupError
from conftest import ROOT
from dvector.cli import format_help, override_settings, script_settings


def namespace():
    return {'n_epochs': 30, 'lr': 0.1, 'use_cuda': True, 'log_dir': 'model_saved',
            'spk_list': ['a', 'b'], 'c': object(), '_private': 1, 'CONST': 2}


def test_settings_are_lowercase_public_plain_values():
    assert set(script_settings(namespace())) == {'n_epochs', 'lr', 'use_cuda', 'log_dir',
                                                 'spk_list'}


def test_overrides_are_typed_from_the_default():
    ns = namespace()
    override_settings(ns, ['--n_epochs', '2', '--lr=0.5', '--use_cuda', 'false',
                           '--log_dir', 'x', '--spk_list', 'p,q,r'])
    assert ns['n_epochs'] == 2 and ns['lr'] == 0.5 and ns['use_cuda'] is False
    assert ns['log_dir'] == 'x' and ns['spk_list'] == ['p', 'q', 'r']


def test_int_accepted_for_float_but_not_text():
    ns = namespace()
    override_settings(ns, ['--lr', '1'])
    assert ns['lr'] == 1.0 and isinstance(ns['lr'], float)
    with pytest.raises(SetupError, match='--n_epochs: expected int'):
        override_settings(namespace(), ['--n_epochs', '2.5'])
    with pytest.raises(SetupError, match='--use_cuda: expected true or false'):
        override_settings(namespace(), ['--use_cuda', 'maybe'])


def test_unknown_setting_lists_valid_ones():
    with pytest.raises(SetupError) as err:
        override_settings(namespace(), ['--n_epoch', '2'])
    assert 'unknown setting --n_epoch' in str(err.value)
    assert 'n_epochs' in str(err.value) and 'lr' in str(err.value)


def test_missing_value_and_stray_argument():
    with pytest.raises(SetupError, match='missing value'):
        override_settings(namespace(), ['--lr'])
    with pytest.raises(SetupError, match='unexpected argument'):
        override_settings(namespace(), ['2'])


def test_help_prints_every_setting_with_its_value(capsys):
    with pytest.raises(SystemExit) as stop:
        override_settings(namespace(), ['--help'], doc='My script.')
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert 'My script.' in out and '--n_epochs' in out and '30' in out and 'a,b' in out
    assert format_help({'x': 1}).count('--x') == 1


def test_a_recipe_file_comes_first_and_flags_override_it(tmp_path):
    recipe = tmp_path / 'r.py'
    recipe.write_text("# comment\nlr = 1  # an int for a float\nlog_dir = 'runs/x'\n"
                      "spk_list = ['c']\nn_epochs = 3\n")
    ns = namespace()
    override_settings(ns, [str(recipe), '--n_epochs', '5'])
    assert ns['lr'] == 1.0 and isinstance(ns['lr'], float) and ns['log_dir'] == 'runs/x'
    assert ns['spk_list'] == ['c'] and ns['n_epochs'] == 5


@pytest.mark.parametrize('text, message', [
    ('lr = "fast"\n', "lr = 'fast' should be a float"),
    ('n_epoch = 3\n', 'unknown setting n_epoch'),
    ('lr = = 1\n', 'not a recipe of name = value lines'),
    ('import os\n', 'not a recipe of name = value lines'),
])
def test_a_bad_recipe_is_one_clear_error_naming_the_file(tmp_path, text, message):
    recipe = tmp_path / 'r.py'
    recipe.write_text(text)
    with pytest.raises(SetupError, match=message) as err:
        override_settings(namespace(), [str(recipe)])
    assert str(recipe) in str(err.value)
    with pytest.raises(SetupError, match='cannot read the recipe'):
        override_settings(namespace(), [str(tmp_path / 'missing.py')])


ESCAPE = ("x = [c for c in ().__class__.__base__.__subclasses__() "
          "if c.__name__ == 'catch_warnings'][0]()._module.__builtins__['__import__']('os')"
          ".system('touch {marker}')\n")


@pytest.mark.parametrize('text, message', [
    (ESCAPE, 'line 1: x is not given a literal value'),
    ('lr = 0.1\nopen("{marker}", "w")\n', 'line 2 is something else'),
    ('lr, n_epochs = 0.1, 2\n', 'line 1 is something else'),
    ('lr = n_epochs = 0.1\n', 'line 1 is something else'),
    ('import os\n', 'line 1 is something else'),
    ('lr = 1e-1 * 2\n', 'lr is not given a literal value'),
    ('lr = 0.1\0\n', 'cannot parse it'),
])
def test_a_recipe_is_read_not_run(tmp_path, text, message):
    """Issue 27 case 17: nothing in a recipe is executed (the subclass walk escaped the
    literals-only exec); anything but name = literal is one line naming the line."""
    marker = tmp_path / 'ran'
    recipe = tmp_path / 'r.py'
    recipe.write_text(text.replace('{marker}', str(marker)))
    with pytest.raises(SetupError, match=message) as err:
        override_settings(namespace(), [str(recipe)])
    assert str(recipe) in str(err.value) and '\n' not in str(err.value)
    assert not marker.exists()


def test_a_recipe_with_a_docstring_and_negative_numbers_is_a_recipe(tmp_path):
    recipe = tmp_path / 'r.py'
    recipe.write_text('"""My recipe."""\nlr = -0.5\nspk_list = ("a", "b")\nlog_dir = None\n')
    ns = namespace()
    ns['log_dir'] = None
    override_settings(ns, [str(recipe)])
    assert ns['lr'] == -0.5 and ns['spk_list'] == ['a', 'b']


def test_a_message_never_holds_an_unbounded_value(tmp_path):
    recipe = tmp_path / 'r.py'
    recipe.write_text('lr = "' + 'x' * 100000 + '"\n')
    with pytest.raises(SetupError) as err:
        override_settings(namespace(), [str(recipe)])
    assert len(str(err.value)) < 300
    with pytest.raises(SetupError) as err:
        override_settings(namespace(), ['--n_epochs', '9' * 5000 + 'x'])
    assert len(str(err.value)) < 300


def test_help_shows_each_settings_comment_and_range_from_the_script(tmp_path, capsys):
    from dvector import cli
    script = tmp_path / 'script.py'
    script.write_text("n_epochs = 30                 # number of epochs\n"
                      "lr = 0.1                      # initial learning rate, a long comment\n"
                      "                              #   continued on the next line\n"
                      "spk_list = []\n"
                      "x = 1\n# not about x\n")
    ns = {'n_epochs': 30, 'lr': 0.1, 'spk_list': [], '__file__': str(script),
          'SETTING_RULES': {'n_epochs': cli.at_least(1), 'lr': cli.above(0, 10)}}
    with pytest.raises(SystemExit):
        override_settings(ns, ['--help'])
    out = capsys.readouterr().out.splitlines()
    assert out[out.index('  --n_epochs 30') + 1] == \
        '      number of epochs; allowed: a number >= 1'
    about_lr = ' '.join(line.strip() for line in out[out.index('  --lr 0.1') + 1:-1])
    assert about_lr == ('initial learning rate, a long comment continued on the next line; '
                        'allowed: a number > 0 and <= 10')
    assert out[-1] == '  --spk_list '  # no comment, no rule: nothing made up
    assert cli.setting_comments(str(tmp_path / 'none.py')) == {}


def test_every_script_setting_has_a_comment_in_its_help():
    import glob
    import os

    from conftest import ROOT
    from dvector import cli
    for path in glob.glob(os.path.join(ROOT, '*.py')) + glob.glob(os.path.join(ROOT, 'tools',
                                                                               '*.py')):
        with open(path, encoding='utf-8') as f:
            if 'override_settings(globals()' not in f.read():
                continue
        comments = {k: v for k, v in cli.setting_comments(path).items()
                    if k.islower() and not k.startswith('_')}
        assert comments, path
        assert not [name for name, about in comments.items() if not about], path


def test_list_items_take_the_type_of_the_defaults_items():
    ns = {'bands': [2, 4], 'priors': [0.01], 'names': ['a'], 'empty': []}
    override_settings(ns, ['--bands', '1,2.5', '--priors', '0.1,1', '--names', '7,x',
                           '--empty', '5'])
    assert ns.pop('GIVEN_SETTINGS') == {'bands', 'priors', 'names', 'empty'}
    assert ns == {'bands': [1, 2.5], 'priors': [0.1, 1], 'names': ['7', 'x'], 'empty': ['5']}
    assert [type(v) for v in ns['bands']] == [int, float]
    with pytest.raises(SetupError, match="--bands: expected comma-separated numbers, got '1,x'"):
        override_settings({'bands': [2, 4]}, ['--bands', '1,x'])


def test_a_pool_worker_of_a_script_ends_quietly_on_sigterm(tmp_path):
    """A multiprocessing pool is stopped with SIGTERM when its work is done: the workers forked
    from a script that cli.run started end without a traceback (the script itself still stops
    as on Ctrl-C)."""
    script = tmp_path / 'pool.py'
    script.write_text(
        'import multiprocessing, sys\n'
        f'sys.path.insert(0, {ROOT!r})\n'
        'from dvector import cli\n'
        'def square(x):\n'
        '    return x * x\n'
        'def main():\n'
        '    with multiprocessing.get_context("fork").Pool(2) as pool:\n'
        '        print(sum(pool.map(square, range(10))))\n'
        'cli.run(main)\n')
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0 and result.stdout == '285\n'
    assert 'Traceback' not in result.stderr and 'KeyboardInterrupt' not in result.stderr
