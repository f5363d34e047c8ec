"""Which browser the page check uses (course/browser.py): a headless shell before a
whole browser, wherever each is found, since it costs about half the CPU per check."""
import os
import stat

import pytest

from course import browser


def executable(folder, relative):
    path = folder / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


@pytest.fixture
def machine(tmp_path, monkeypatch):
    """An empty PATH and Playwright cache of our own, and no browser handed down."""
    bin_folder, cache = tmp_path / "bin", tmp_path / "ms-playwright"
    bin_folder.mkdir()
    cache.mkdir()
    monkeypatch.setenv("PATH", str(bin_folder))
    monkeypatch.setattr(browser, "PLAYWRIGHT_CACHES", (cache,))
    for name in (browser.BROWSER_FOUND, browser.BROWSER_MISSING, "CHROMIUM_PATH", browser.SETTING):
        monkeypatch.delenv(name, raising=False)
    return bin_folder, cache


def test_a_headless_shell_on_path_is_chosen_over_a_whole_chromium(machine):
    bin_folder, _ = machine
    executable(bin_folder, "chromium")
    shell = executable(bin_folder, "chromium-headless-shell")
    assert browser.on_this_machine() == shell


def test_playwrights_headless_shell_is_chosen_over_a_whole_chromium_on_path(machine):
    bin_folder, cache = machine
    executable(bin_folder, "chromium")
    shell = executable(cache, "chromium_headless_shell-1200/chrome-linux/headless_shell")
    assert browser.on_this_machine() == shell


@pytest.mark.parametrize("installs", [True, False], ids=["installed", "install_failed"])
def test_where_installing_is_allowed_a_shell_is_added_beside_a_whole_chromium(machine, monkeypatch, installs):
    bin_folder, _ = machine
    whole = executable(bin_folder, "chromium")
    asked = []

    def install(tell, packages):
        asked.append(packages)
        if not installs:
            return None, "apt-get install chromium-headless-shell failed (E: no such package)."
        return executable(bin_folder, "chromium-headless-shell"), None

    monkeypatch.setattr(browser, "may_install_package", lambda: True)
    monkeypatch.setattr(browser, "install_package", install)
    binary, why = browser.find(tell=lambda line: None)
    assert asked == [(browser.SHELL_PACKAGE,)]
    assert (binary, why) == ((os.path.join(bin_folder, "chromium-headless-shell") if installs else whole), None)
