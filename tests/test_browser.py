"""dvector/browser.py's pieces that need no browser; the page in Chromium is driven by
tests/test_demo_browser.py."""
import time

import pytest

from dvector import browser


def test_what_is_missing_is_named(monkeypatch):
    monkeypatch.setattr(browser.shutil, 'which', lambda name: None)
    assert 'Chromium is not installed' in browser.missing_browser()
    monkeypatch.setattr(browser.shutil, 'which',
                        lambda name: None if name == browser.DRIVER else '/usr/bin/' + name)
    assert 'ChromeDriver is not installed' in browser.missing_browser()


def test_wait_for_returns_the_first_true_value_and_names_what_never_came():
    calls = []
    assert browser.wait_for(lambda: calls.append(1) or (len(calls) >= 3 and 'ok'), 5,
                            'three calls') == 'ok'
    start = time.perf_counter()
    with pytest.raises(TimeoutError, match='waited 0.1 s for the answer'):
        browser.wait_for(lambda: 1 / 0, 0.1, 'the answer')  # errors count as not yet
    assert time.perf_counter() - start < 2


def test_free_port_can_be_listened_on():
    import socket
    with socket.socket() as s:
        s.bind(('127.0.0.1', browser.free_port()))
