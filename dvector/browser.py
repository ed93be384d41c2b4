"""demo.py's page driven in headless Chromium, for its browser test and its benchmark.

Debian's ``chromium`` and ``chromium-driver`` with selenium (no browser download): Chromium's
fake microphone plays a wav file (``--use-file-for-fake-audio-capture``), so a recording on the
page is that file's audio as a browser records it (44.1 kHz, the browser's gain). Components are
found by the ``elem_id`` demo.py gives them.
"""
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from typing import Optional

CHROMIUM = ('chromium', 'chromium-browser', 'google-chrome')
DRIVER = 'chromedriver'
POLL_S = 0.02  # how often the page is looked at while waiting


def missing_browser() -> str:
    """Why the page cannot be driven here ('' when it can): selenium, Chromium, ChromeDriver."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return 'selenium is not installed (pip install -r requirements.txt)'
    if not any(shutil.which(name) for name in CHROMIUM):
        return 'Chromium is not installed (apt-get install chromium chromium-driver)'
    if not shutil.which(DRIVER):
        return 'ChromeDriver is not installed (apt-get install chromium-driver)'
    return ''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def launch_demo(root: str, args: list, port: int) -> subprocess.Popen:
    """``python demo.py --port port *args`` in ``root``, its output kept for an error."""
    env = dict(os.environ, PYTHONUNBUFFERED='1')
    process = subprocess.Popen([sys.executable, 'demo.py', '--port', str(port), *args],
                               cwd=root, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    process.started = time.perf_counter()
    return process


def wait_until_up(process: subprocess.Popen, port: int, timeout_s: float = 120) -> float:
    """Seconds from the launch to the page's first HTTP 200; RuntimeError (with its output)
    when demo.py stops or does not answer in time."""
    url = f'http://127.0.0.1:{port}/'
    while time.perf_counter() - process.started < timeout_s:
        if process.poll() is not None:
            raise RuntimeError(f'demo.py stopped (exit {process.returncode}): '
                               + process.stdout.read()[-2000:])
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                if reply.status == 200:
                    return time.perf_counter() - process.started
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError(f'demo.py did not answer at {url} within {timeout_s:g} s')


def start_demo(root: str, args: list, port: int, timeout_s: float = 120) -> tuple:
    """(process, seconds to the first HTTP 200) of ``python demo.py --port port *args``."""
    process = launch_demo(root, args, port)
    return process, wait_until_up(process, port, timeout_s)


def open_browser(microphone_wav: str, width: int = 1100, height: int = 900):
    """Headless Chromium whose microphone plays ``microphone_wav`` (looped)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = next(shutil.which(n) for n in CHROMIUM if shutil.which(n))
    for flag in ('--headless=new', '--no-sandbox', '--disable-dev-shm-usage',
                 '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
                 f'--use-file-for-fake-audio-capture={microphone_wav}',
                 f'--window-size={width},{height}', '--lang=en-US'):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(shutil.which(DRIVER)), options=options)


def wait_for(condition, timeout_s: float, what: str):
    """condition()'s first true value, looked for every POLL_S; TimeoutError naming ``what``."""
    end = time.perf_counter() + timeout_s
    while True:
        try:
            value = condition()
        except Exception:  # an element not there yet, or replaced while read
            value = None
        if value:
            return value
        if time.perf_counter() > end:
            raise TimeoutError(f'waited {timeout_s:g} s for {what}')
        time.sleep(POLL_S)


def element(driver, css: str):
    from selenium.webdriver.common.by import By
    found = [e for e in driver.find_elements(By.CSS_SELECTOR, css) if e.is_displayed()]
    return found[0] if found else None


def open_tab(driver, label: str) -> None:
    """Click the tab whose label starts with ``label``."""
    from selenium.webdriver.common.by import By
    tab = wait_for(lambda: next(t for t in driver.find_elements(By.CSS_SELECTOR, '[role=tab]')
                                if t.text.startswith(label)), 20, f'the tab {label}')
    tab.click()


def record(driver, elem_id: str, seconds: float, timeout_s: float = 20) -> float:
    """Record ``seconds`` of the microphone into the component; returns the moment Stop was
    clicked (perf_counter), after waiting until the recording is posted (its Download button
    shows): a submit before that sends no clip."""
    wait_for(lambda: element(driver, f'#{elem_id} button.record-button'), timeout_s,
             f'the record button of {elem_id}').click()
    stop = wait_for(lambda: element(driver, f'#{elem_id} button.stop-button'), timeout_s,
                    f'the stop button of {elem_id}')
    time.sleep(seconds)
    stop.click()
    stopped = time.perf_counter()
    wait_for(lambda: element(driver, f"#{elem_id} button[aria-label='Download']"), timeout_s,
             f'the recording of {elem_id} to be posted')
    return stopped


def upload(driver, elem_id: str, path: str, timeout_s: float = 20) -> None:
    """Give the component a file, as choosing it in the file dialog does (a clip it holds is
    cleared first)."""
    from selenium.webdriver.common.by import By
    held = element(driver, f"#{elem_id} button[aria-label='Clear']")
    if held:
        held.click()
    source = element(driver, f"#{elem_id} button[aria-label='Upload file']")
    if source:  # the component shows its microphone: switch it to uploading
        source.click()
    field = wait_for(lambda: driver.find_element(By.CSS_SELECTOR, f'#{elem_id} input[type=file]'),
                     timeout_s, f'the file input of {elem_id}')
    field.send_keys(os.path.abspath(path))
    wait_for(lambda: element(driver, f"#{elem_id} button[aria-label='Clear']") or
             element(driver, f"#{elem_id} button[aria-label='Download']"), timeout_s,
             f'the upload of {path} to {elem_id}')


def type_into(driver, elem_id: str, text: str, enter: bool = False) -> None:
    """Type into the component's text field (Enter after it chooses in a dropdown)."""
    from selenium.webdriver.common.keys import Keys
    field = wait_for(lambda: element(driver, f'#{elem_id} input, #{elem_id} textarea'), 20,
                     f'the text field of {elem_id}')
    field.clear()
    field.send_keys(text + (Keys.ENTER if enter else ''))


def click(driver, elem_id: str) -> None:
    wait_for(lambda: element(driver, f'#{elem_id}'), 20, f'the button {elem_id}').click()


def answer(driver, elem_id: str, expected: str, timeout_s: float = 30) -> Optional[str]:
    """The component's text once it holds ``expected``; TimeoutError (with what it held) if it
    never does."""
    try:
        return wait_for(lambda: (lambda t: t if expected in t else None)(
            element(driver, f'#{elem_id}').text), timeout_s, f'{expected!r} in {elem_id}')
    except TimeoutError as err:
        held = element(driver, f'#{elem_id}')
        raise TimeoutError(f'{err}; it holds {held.text if held else None!r}') from None
