"""Time demo.py with the browser in the loop: start-up to a usable page, and the end of a
recording to the answer on the page.

    python tools/benchmarks/bench_demo.py                 # 10 tries of a 5 s recording
    python tools/benchmarks/bench_demo.py --tries 20 --record_seconds 3

Headless Chromium (dvector/browser.py) with its fake microphone playing espeak-ng speech.
Start-up: from launching ``python demo.py`` to its first HTTP 200, and to the page usable (the
record button shown in a browser already open). Two voices are enrolled by upload on the page.
Then each try reloads the page, records ``record_seconds`` on the Identify tab, and times from
the click on Stop to the answer on the page (the recording's posting, the click on Identify and
the answer), also split into its parts. Baseline, in the same run: the same step without the
page (live.identify_clip, the Identify button's one call, on the last recording the page
received, in this process): the model and the scoring alone. The machine's load average is
printed with the figures: on a shared CPU every figure is slower.
"""
import glob
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)

from dvector import browser, cli  # noqa: E402

# ---- settings ----
tries = 10               # recordings timed
record_seconds = 5.0     # length of each recording
threads = 1              # demo.py --threads (the model's CPU threads), also for the baseline
work_dir = ''            # clips, enrollments and uploads; '' = a temporary folder, removed after
# ----
SETTING_RULES = {  # the allowed values of each setting, checked before any work
    'tries': cli.at_least(1), 'record_seconds': cli.above(0, 60), 'threads': cli.at_least(1),
    'work_dir': cli.TEXT}

VOICES = {  # file: (voice, text)
    'alice.wav': ('en-us+f3', 'The quick brown fox jumps over the lazy dog while the sun is '
                              'shining brightly on the green hills of the valley.'),
    'bob.wav': ('en-gb+m3', 'We also need a small plastic snake and a big toy frog for the '
                            'kids, she said, and then we can all go home together.'),
    'alice_mic.wav': ('en-us+f3', 'Six spoons of fresh snow peas, five thick slabs of blue '
                                  'cheese, and maybe a snack for her brother Bob.'),
}


def make_clips(root: str) -> dict:
    """{file: path} of VOICES, spoken by espeak-ng."""
    if not shutil.which('espeak-ng'):
        raise cli.SetupError('espeak-ng is not installed (apt-get install espeak-ng)')
    paths = {}
    for name, (voice, text) in VOICES.items():
        paths[name] = os.path.join(root, name)
        subprocess.run(['espeak-ng', '-v', voice, '-w', paths[name], text], check=True)
    return paths


def start_up(driver, root: str) -> tuple:
    """(process, port, s to HTTP 200, s to a usable page) of demo.py launched now."""
    port = browser.free_port()
    process = browser.launch_demo(REPO, ['--embedding_dir', os.path.join(root, 'enrolled'),
                                         '--files_dir', os.path.join(root, 'files'),
                                         '--threads', str(threads)], port)
    to_http = browser.wait_until_up(process, port)
    driver.get(f'http://127.0.0.1:{port}/')
    browser.wait_for(lambda: browser.element(driver, '#enroll_clip button.record-button'), 60,
                     'the page')
    return process, port, to_http, time.perf_counter() - process.started


def enroll_by_upload(driver, name: str, path: str) -> None:
    browser.type_into(driver, 'enroll_name', name)
    browser.upload(driver, 'enroll_clip', path)
    browser.click(driver, 'enroll_button')
    browser.answer(driver, 'enroll_result', f'등록됨: {name}')


def one_try(driver, url: str) -> tuple:
    """(stop to answer, stop to posted) seconds of one recording identified on the page."""
    driver.get(url)
    browser.open_tab(driver, 'Identify')
    stopped = browser.record(driver, 'identify_clip', record_seconds)
    posted = time.perf_counter()
    browser.click(driver, 'identify_button')
    browser.answer(driver, 'identify_result', 'Identified')
    return time.perf_counter() - stopped, posted - stopped


def baseline(root: str, repeats: int) -> list:
    """Seconds of live.identify_clip (the one call behind the Identify button) on the page's
    last recording, in this process, after one untimed call that loads the model; the file is
    read and its speech found anew each time."""
    import torch

    from dvector import live
    from dvector.recordings import REAL_MODEL_PATH, analyse_wav
    torch.set_num_threads(threads)
    enrolled = os.path.join(root, 'enrolled')
    newest = max(glob.glob(os.path.join(root, 'files', 'uploads', '**', '*.wav'),
                           recursive=True), key=os.path.getmtime)
    live.identify_clip(newest, enrolled, REAL_MODEL_PATH)
    times = []
    for _ in range(repeats):
        analyse_wav.cache_clear()  # read the file and find its speech again, as a new clip is
        start = time.perf_counter()
        live.identify_clip(newest, enrolled, REAL_MODEL_PATH)
        times.append(time.perf_counter() - start)
    return times


def summary(times: list) -> str:
    return (f'median {statistics.median(times):.3f} s (min {min(times):.3f}, '
            f'max {max(times):.3f}, n = {len(times)})')


def bench(root: str) -> None:
    clips = make_clips(root)
    print(f'load average before: {os.getloadavg()[0]:.1f} ({os.cpu_count()} CPUs)')
    driver = browser.open_browser(clips['alice_mic.wav'])
    process = None
    try:
        process, port, to_http, to_page = start_up(driver, root)
        print(f'start-up of demo.py: {to_http:.1f} s to the first HTTP 200, {to_page:.1f} s to '
              'a usable page')
        enroll_by_upload(driver, 'alice', clips['alice.wav'])
        enroll_by_upload(driver, 'bob', clips['bob.wav'])
        results = [one_try(driver, f'http://127.0.0.1:{port}/') for _ in range(tries)]
    finally:
        driver.quit()
        if process is not None:
            process.terminate()
            process.wait(timeout=30)
    print(f'end of a {record_seconds:g} s recording to the answer on the page: '
          + summary([total for total, _ in results]))
    print('  of which the recording posted to the server: '
          + summary([posted for _, posted in results]))
    print('baseline, live.identify_clip in this process (no page): '
          + summary(baseline(root, tries)))
    print(f'load average after: {os.getloadavg()[0]:.1f}')


def main() -> None:
    cli.override_settings(globals(), doc=__doc__)
    reason = browser.missing_browser()
    if reason:
        raise cli.SetupError(reason)
    root = work_dir or tempfile.mkdtemp(prefix='bench_demo_')
    try:
        bench(os.path.abspath(root))
    finally:
        if not work_dir:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == '__main__':
    cli.run(main)
