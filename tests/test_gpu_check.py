"""tools/benchmarks/gpu_check.py at its small size on the CPU: every step runs, measures, and a
failing step is reported without hiding the others."""
import json
import math

import torch

from conftest import run_script

TOOL = 'tools/benchmarks/gpu_check.py'
STEPS = ['cuda_tests', 'train_torchrun', 'scripts', 'epoch_fp32', 'epoch_bf16',
         'scoring_pieces', 'scoring_ecapa', 'embeddings_equal']


def read_report(path):
    with open(path, encoding='utf-8') as f:
        return json.load(f)


def test_every_step_runs_and_measures_on_the_cpu(tmp_path):
    out = tmp_path / 'gpu_check.json'
    result = run_script(TOOL, '--size', 'small', '--cuda_tests', 'tests/test_checkpoint.py',
                        '--out', str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    report = read_report(out)
    steps = report['steps']
    assert list(steps) == STEPS and report['failed'] == []
    for name, step in steps.items():
        assert step['status'] == 'ok' and math.isfinite(step['value']), (name, step)
    assert steps['cuda_tests']['value'] >= 1  # at least one test marked cuda ran and passed
    for name in ('train_torchrun', 'scripts', 'scoring_pieces', 'scoring_ecapa'):
        assert steps[name]['value'] > 0
    for name in ('epoch_fp32', 'epoch_bf16'):
        assert steps[name]['measured_s'] > 0 and steps[name]['steps'] == 3
        assert steps[name]['goal_met'] == (steps[name]['value'] < 5.0)
    assert 0 <= steps['embeddings_equal']['value'] < 1e-4
    if not torch.cuda.is_available():  # what it compared, said as it is
        assert report['cpu_figures'] and 'CPU FIGURES' in result.stdout
        assert steps['embeddings_equal']['note'].startswith('CPU against CPU (no CUDA device)')
        assert 'all_reduce through dvector.distributed on gloo' in steps['train_torchrun']['note']
    for name in STEPS:
        assert name in result.stdout  # one table row each


def test_a_failing_step_is_one_line_and_the_others_still_run(tmp_path):
    out = tmp_path / 'gpu_check.json'
    result = run_script(TOOL, '--size', 'small', '--steps', 'scripts,embeddings_equal',
                        '--max_difference', '1e-12', '--out', str(out))
    assert result.returncode == 1
    report = read_report(out)
    assert report['failed'] == ['scripts', 'embeddings_equal']
    assert 'no trained model' in report['steps']['scripts']['note']
    assert report['steps']['embeddings_equal']['value'] > 1e-12  # measured, then judged
    assert '2 of 2 steps failed: scripts, embeddings_equal' in result.stdout


def test_bad_settings_are_one_line(tmp_path):
    result = run_script(TOOL, '--size', 'huge', '--out', str(tmp_path / 'r.json'))
    assert result.returncode == 1 and result.stderr.strip().count('\n') == 0
    assert result.stderr.startswith('error: --size huge: expected one of full, small')
    assert not (tmp_path / 'r.json').exists()
