"""`covseg leaderboard --columns a,b,c` for every report format, and the LaTeX table's default columns, which fit
a portrait article page with booktabs (compiled with pdflatex where it exists)."""
import json
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from benchmark.errors import UserError
from benchmark.leaderboard.command import main

LABELS = ["zero-shot", "kNN-CLIP", "kNN-CLIP k=32 λ=0.5 with a deliberately long label that has to wrap",
          "avalanche/EWC λ=1000", "fine-tuning", "joint training (upper bound)",
          "replay_buffer_with_a_very_long_identifier_and_no_spaces_at_all"]


def make_run(results: Path, index: int, seed: int, final: float) -> Path:
    """A complete run folder of the variant `index` (its own name=), with every score the tables show."""
    method = ["zeroshot", "knnclip", "finetune", "ewc"][index % 4]
    run_dir = results / "toy" / method / f"r{index}-{seed}"
    run_dir.mkdir(parents=True)
    label = LABELS[index] if index < len(LABELS) else f"{method} variant {index}"
    config = {"method": {"name": method, "k": index}, "seed": seed, "name": label,
              "stream": {"name": "toy", "dataset": "demo", "num_steps": 2, "order": "random", "order_seed": 0},
              "model": {"name": "tiny_random"}, "data": {"demo_seed": 0},
              "eval": {"vocabulary": "seen", "miou_mode": "present", "max_images": None}}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    (run_dir / "manifest.json").write_text(json.dumps({"status": "complete", "stream": "toy", "stream_version": 1,
                                                       "stream_hash": "h", "method": method}))
    metrics = {"final": final, "avg_incremental": final + 3.25, "forgetting_max": 12.5 - index / 3,
               "bwt": -10.125, "old": final - 1, "new": final + 1, "previous": final, "last": final + 2}
    summary = {"num_steps": 2, "metrics": {"miou": metrics}, "seen": {"miou": [final + 1, final]},
               "memory_bytes": [0, 1234567 * index], "seconds": {"learn": [1, 1], "eval": [1, 1]}}
    (run_dir / "summary.json").write_text(json.dumps(summary))
    return run_dir


@pytest.fixture
def results(tmp_path) -> Path:
    """20 variants of two runs each (so every cell has a ± std)."""
    root = tmp_path / "results"
    for index in range(20):
        for seed in (0, 1):
            make_run(root, index, seed, 10.0 + index * 3.7 + seed * 1.3)
    return root


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
