"""demo.py in a real browser: headless Chromium (Debian's chromium and chromium-driver, with
selenium) whose fake microphone plays espeak-ng speech. Two voices are recorded and enrolled, a
third clip of the first is identified, and a genuine and an impostor clip are verified; the
answers are read off the page, a screenshot is saved in the test's folder, and every file the
page fetched came from demo.py itself."""
import os
import re
import shutil
import subprocess
import urllib.error
import urllib.request

import pytest

from conftest import ROOT
from dvector import browser

REASON = browser.missing_browser() or (
    '' if shutil.which('espeak-ng') else 'espeak-ng is not installed (apt-get install espeak-ng)')
pytestmark = pytest.mark.skipif(bool(REASON), reason=REASON or 'ok')

VOICES = {  # file: (voice, text); the microphone loops the file, so any length is enough
    'alice_mic.wav': ('en-us+f3', 'The quick brown fox jumps over the lazy dog while the sun is '
                                  'shining brightly on the green hills of the valley.'),
    'bob_mic.wav': ('en-gb+m3', 'We also need a small plastic snake and a big toy frog for the '
                                'kids, she said, and then we can all go home together.'),
    'alice_again.wav': ('en-us+f3', 'Six spoons of fresh snow peas, five thick slabs of blue '
                                    'cheese, and maybe a snack for her brother Bob.'),
    'bob_again.wav': ('en-gb+m3', 'She can scoop these things into three red bags, and we will '
                                  'go meet her Wednesday at the train station.'),
}
ENROLL_S = 4.5  # seconds recorded to enroll (enrolling needs 3 s of speech)
TEST_S = 3.0    # seconds recorded to identify


@pytest.fixture(scope='module')
def server(tmp_path_factory):
    """demo.py on a free port with an enrollment folder of the test's: (url, folder)."""
    folder = tmp_path_factory.mktemp('demo_browser')
    (folder / 'files' / 'uploads' / 'old').mkdir(parents=True)  # not this run's: never served
    (folder / 'files' / 'uploads' / 'old' / 'mine.txt').write_text('not for the page')
    port = browser.free_port()
    process = browser.launch_demo(ROOT, ['--embedding_dir', str(folder / 'enrolled'),
                                         '--files_dir', str(folder / 'files')], port)
    for name, (voice, text) in VOICES.items():  # while it starts
        subprocess.run(['espeak-ng', '-v', voice, '-w', str(folder / name), text], check=True)
    try:
        browser.wait_until_up(process, port)
    except RuntimeError:
        process.kill()
        raise
    yield f'http://127.0.0.1:{port}/', folder
    process.terminate()
    process.wait(timeout=20)


def page_with_microphone(url: str, wav: str):
    driver = browser.open_browser(wav)
    driver.get(url)
    return driver


def enroll_by_microphone(url: str, wav: str, name: str) -> str:
    driver = page_with_microphone(url, wav)
    try:
        browser.type_into(driver, 'enroll_name', name)
        browser.record(driver, 'enroll_clip', ENROLL_S)
        browser.click(driver, 'enroll_button')
        return browser.answer(driver, 'enroll_result', 'Enrolled')
    finally:
        driver.quit()


def test_record_enroll_identify_verify_in_chromium(server):
    url, folder = server
    assert 'Enrolled speakers · 등록된 화자: alice' in enroll_by_microphone(
        url, str(folder / 'alice_mic.wav'), 'alice')
    assert 'alice, bob' in enroll_by_microphone(url, str(folder / 'bob_mic.wav'), 'bob')
    assert {'alice.pth', 'bob.pth'} <= set(os.listdir(folder / 'enrolled'))

    driver = page_with_microphone(url, str(folder / 'alice_again.wav'))
    try:
        browser.open_tab(driver, 'Identify')
        browser.record(driver, 'identify_clip', TEST_S)
        browser.click(driver, 'identify_button')
        identified = browser.answer(driver, 'identify_result', 'Identified')
        assert 'Identified · 식별: alice' in identified, identified
        assert re.search(r'^1\s+alice\s', identified, re.M) and \
            re.search(r'^2\s+bob\s', identified, re.M), identified  # ranked, both shown

        browser.open_tab(driver, 'Verify')
        browser.type_into(driver, 'verify_speaker', 'alice', enter=True)
        browser.upload(driver, 'verify_clip', str(folder / 'alice_again.wav'))
        browser.click(driver, 'verify_button')
        genuine = browser.answer(driver, 'verify_result', 'Score')
        assert genuine.startswith('Accept') and 'Claimed speaker · 주장한 화자: alice' in genuine
        browser.upload(driver, 'verify_clip', str(folder / 'bob_again.wav'))
        browser.click(driver, 'verify_button')
        impostor = browser.answer(driver, 'verify_result', 'Reject')
        assert 'Bayes threshold' in impostor and 'more likely another speaker' in impostor

        browser.open_tab(driver, 'See the voices')
        browser.click(driver, 'voices_button')
        assert 'star' in browser.answer(driver, 'voices_result', '2 enrolled speakers')
        browser.wait_for(lambda: driver.execute_script(  # both served from files_dir/figures
            "return [...document.querySelectorAll('img')].filter(i => i.complete && "
            "i.naturalWidth > 0 && /heatmap|voice_map/.test(i.src)).length") == 2, 30,
            'the two figures of See the voices')
        driver.save_screenshot(str(folder / 'demo.png'))
        fetched = driver.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name)")
        outside = [u for u in fetched if not u.startswith((url, 'data:', 'blob:'))]
        assert len(fetched) > 10 and not outside, outside  # nothing from outside the machine
    finally:
        driver.quit()
    with open(folder / 'demo.png', 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    (folder / 'files' / 'notes.txt').write_text('not for the page')  # only figures are served
    for path in (folder / 'files' / 'notes.txt', folder / 'enrolled' / 'alice.pth',
                 folder / 'files' / 'uploads' / 'old' / 'mine.txt'):
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f'{url}gradio_api/file={path}', timeout=10)
