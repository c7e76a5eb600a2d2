"""Progress bars: ETA lines without carriage returns when the output is not a terminal; quiet silences them."""
import io

from benchmark import progress as progress_module
from benchmark.progress import Progress


def test_not_a_terminal_gives_whole_lines_with_eta(monkeypatch):
    monkeypatch.setattr(progress_module, "LOG_INTERVAL", 0.0)  # report at every update
    stream = io.StringIO()
    assert list(Progress(stream=stream).bar(range(5), desc="eval step 0")) == list(range(5))
    text = stream.getvalue()
    assert "\r" not in text and "\x1b" not in text and text.endswith("\n")
    lines = text.splitlines()
    assert lines and all(line.startswith("eval step 0:") for line in lines)
    assert "5/5" in lines[-1] and "<" in lines[-1]  # position and elapsed<remaining (ETA)


def test_short_loops_stay_silent_in_logs_and_quiet_silences_bars(monkeypatch):
    stream = io.StringIO()
    list(Progress(stream=stream).bar(range(100), desc="fast"))
    assert stream.getvalue() == ""  # shorter than LOG_INTERVAL: nothing to report
    monkeypatch.setattr(progress_module, "LOG_INTERVAL", 0.0)
    list(Progress(quiet=True, stream=stream).bar(range(5), desc="quiet"))
    assert stream.getvalue() == ""
