"""Tables of one stream that differ only in its draw (the demo drawn with another secret, or another data root's
own) say so in words in every format's title, not only by a differing hash."""
import html
from pathlib import Path

PUBLIC, PRIVATE = "3f2a1b2c9d8e7f60", "9e8d7c6b5a4f3e21"
NOTE = "differ only in the stream's draw"


def two_draws(root: Path) -> None:
    """Two runs of one configuration on two draws of the demo stream `toy`: the public and a private one."""
    from run_folders import KNN_DEFAULTS, make_run

    make_run(root, "public", KNN_DEFAULTS, 30.0, stream_hash=PUBLIC, manifest_extra={"data": {"public_draw": True}})
    make_run(root, "private", KNN_DEFAULTS, 20.0, stream_hash=PRIVATE, manifest_extra={"data": {"public_draw": False}})


def test_every_format_says_the_tables_differ_only_in_the_draw(tmp_path, capsys, monkeypatch):
    from benchmark.leaderboard.command import main

    monkeypatch.setenv("COLUMNS", "100")
    root = tmp_path / "results"
    two_draws(root)
    assert main([f"results_dir={root}", "--format", "latex", "bootstrap=0"]) == 0
    terminal = capsys.readouterr().out
    public, private = "toy (version 1) — draw 3f2a1b2c… (public draw)", "toy (version 1) — draw 9e8d7c6b… (private draw)"
    markdown = (root / "LEADERBOARD.md").read_text()
    assert f"## {public}" in markdown and f"## {private}" in markdown and markdown.count(NOTE) == 2
    page = (root / "leaderboard.html").read_text()
    assert f"<h2>{public}</h2>" in page and f"<h2>{private}</h2>" in page and page.count(html.escape(NOTE)) == 2
    assert public in terminal and private in terminal
    assert " ".join(terminal.split()).count(NOTE) == 2  # wrapped to 100 columns
    assert max(map(len, terminal.splitlines())) <= 100
    latex = (root / "leaderboard.tex").read_text()
    assert r"\caption{toy (version 1) --- draw 3f2a1b2c\ldots{} (public draw): " in latex
    assert r"\caption{toy (version 1) --- draw 9e8d7c6b\ldots{} (private draw): " in latex and latex.count(NOTE) == 2


def test_figure_titles_name_the_draw_and_an_unsplit_table_names_none(tmp_path):
    from benchmark.leaderboard.figures import leaderboard_styles, table_figures
    from benchmark.leaderboard.runs import read_runs
    from benchmark.leaderboard.statistics import stream_tables
    from benchmark.leaderboard.table import split_note, table_title
    from run_folders import KNN_DEFAULTS, make_run

    root = tmp_path / "results"
    two_draws(root)
    tables = stream_tables(read_runs(root)[0])
    figures = table_figures(tables[0], leaderboard_styles(tables))
    assert figures["miou"]._suptitle.get_text().startswith("toy (version 1) — draw 3f2a1b2c… (public draw)")
    single = tmp_path / "single"
    make_run(single, "one", KNN_DEFAULTS, 30.0, stream_hash=PUBLIC)
    [table] = stream_tables(read_runs(single)[0])
    assert table_title(table) == "toy (version 1)" and split_note(table) == ""
