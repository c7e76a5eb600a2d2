"""`covseg leaderboard --columns a,b,c` for every report format, and the LaTeX table's default columns, which fit
a portrait article page with booktabs (compiled with pdflatex where it exists)."""
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from benchmark.errors import UserError
from benchmark.leaderboard.command import main
from run_folders import twenty_variants


@pytest.fixture
def results(tmp_path) -> Path:
    return twenty_variants(tmp_path / "results")


def test_columns_selects_the_columns_of_every_format(results, capsys):
    assert main([f"results_dir={results}", "bootstrap=0", "--format", "latex", "--columns", "variant,miou_final,n"]) == 0
    terminal = capsys.readouterr().out
    header = next(line for line in terminal.splitlines() if line.lstrip().startswith("#"))
    assert header.split() == ["#", "variant", "final", "mIoU", "n"]
    markdown = (results / "LEADERBOARD.md").read_text()
    assert "| # | variant | final mIoU | n | runs | plots |" in markdown
    html = (results / "leaderboard.html").read_text()
    assert "<th class=\"num\">final mIoU</th>" in html and "<th class=\"num\">forgetting</th>" not in html
    tex = (results / "leaderboard.tex").read_text()
    assert "Variant & final mIoU & $n$" in tex and "forgetting" not in tex
    csv = pd.read_csv(results / "leaderboard.csv")
    assert list(csv.columns)[6:] == ["method", "label", "miou_final_mean", "miou_final_std", "miou_final_n",
                                     "n_runs", "seeds", "order_seeds"]


def test_an_unknown_column_is_refused_with_the_valid_ones(results):
    with pytest.raises(UserError, match=r"--columns: unknown column\(s\) mioufinal .*; valid: variant, model, "
                                        r"miou_final"):
        main([f"results_dir={results}", "--columns=variant,mioufinal"])


def test_the_default_latex_table_fits_a_portrait_page(results, tmp_path):
    if shutil.which("pdflatex") is None or not subprocess.run(["kpsewhich", "booktabs.sty"], capture_output=True,
                                                              text=True).stdout.strip():
        pytest.skip("no pdflatex with booktabs (Debian: texlive-latex-base texlive-latex-recommended)")
    assert main([f"results_dir={results}", "bootstrap=0", "--format", "latex"]) == 0
    document = tmp_path / "paper.tex"
    document.write_text("\\documentclass{article}\n\\usepackage[utf8]{inputenc}\n\\usepackage{booktabs}\n"
                        f"\\begin{{document}}\n\\input{{{results / 'leaderboard.tex'}}}\n\\end{{document}}\n")
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", document.name],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    log = (tmp_path / "paper.log").read_text(errors="replace")
    assert done.returncode == 0, log[-3000:]
    assert "Overfull \\hbox" not in log, log[log.index("Overfull"):][:1500]


def test_the_terminal_table_fits_the_terminal_and_says_what_it_left_out(results, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    assert main([f"results_dir={results}", "bootstrap=0"]) == 0
    out = capsys.readouterr().out
    assert max(map(len, out.splitlines())) <= 100, out
    assert "not shown, to fit 100 columns:" in out and "time/step" in out.split("not shown")[1]
    assert "final" in out and "80.9 ± 0.9" in out  # the best row's final mIoU stays
    assert "? no provenance. --strict would drop every row." in out
    assert "zero-shot ?" in out  # the row's provenance marks, as in LEADERBOARD.md
    monkeypatch.setenv("COLUMNS", "400")
    assert main([f"results_dir={results}", "bootstrap=0"]) == 0
    assert "not shown" not in capsys.readouterr().out
