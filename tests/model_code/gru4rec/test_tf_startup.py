"""Quiet imports: what a module writes to file descriptor 2 while it loads is held back, unless it fails."""
import os
import sys
import textwrap

import pytest

from model_code.gru4rec.tf_startup import quiet_import


@pytest.fixture
def noisy_module(tmp_path, monkeypatch):
    """A module that writes a native-style log line to fd 2 when imported, failing when told to."""
    def make(name: str, fail: bool = False):
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(f"""
            import os
            os.write(2, b"I0000 start-up notice of {name}\\n")
            if {fail}:
                raise ImportError("{name} cannot load")
        """))
        return name

    monkeypatch.syspath_prepend(str(tmp_path))
    yield make
    for name in [module for module in sys.modules if module.startswith("noisy_")]:
        del sys.modules[name]


def test_start_up_lines_are_held_back(noisy_module, capfd):
    module = quiet_import(noisy_module("noisy_quiet"))
    assert module.__name__ == "noisy_quiet"
    assert capfd.readouterr().err == ""


def test_start_up_lines_are_shown_when_asked(noisy_module, capfd):
    quiet_import(noisy_module("noisy_shown"), show_logs=True)
    assert capfd.readouterr().err == "I0000 start-up notice of noisy_shown\n"


def test_a_failed_import_shows_what_it_wrote(noisy_module, capfd):
    with pytest.raises(ImportError, match="noisy_failing cannot load"):
        quiet_import(noisy_module("noisy_failing", fail=True))
    assert "I0000 start-up notice of noisy_failing" in capfd.readouterr().err
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "after\n", "file descriptor 2 is restored"
