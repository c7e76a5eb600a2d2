"""The leaderboard's tables where researchers put them: the terminal, LaTeX (booktabs), one HTML file, and
the cross-method per-class table."""
import base64
import csv
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from benchmark.leaderboard.command import main
from run_folders import KNN_DEFAULTS, make_run

VOID = {"meta", "img", "br", "hr", "input", "link"}


def write_class_scores(run_dir: Path, rows: list[tuple]) -> None:
    """class_scores.csv of a two-step run: (class_id, class, learned_at_step, final IoU or None); and R in
    summary.json."""
    summary = json.loads((run_dir / "summary.json").read_text())
    summary["matrices"] = {"miou": [[50.0, None], [40.0, 30.0]]}
    (run_dir / "summary.json").write_text(json.dumps(summary))
    with open(run_dir / "class_scores.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["step", "class_id", "class", "learned_at_step", "gt_pixels", "iou"])
        for class_id, name, learned, iou in rows:
            writer.writerow([0, class_id, name, learned, 10, 99.0])  # step 0: not the final step
            writer.writerow([1, class_id, name, learned, 0 if iou is None else 10, "" if iou is None else iou])


@pytest.fixture
def results(tmp_path) -> Path:
    root = tmp_path / "results"
    a = make_run(root, "a", KNN_DEFAULTS, 30.0, seed=0, forgetting=4.0)
    b = make_run(root, "b", KNN_DEFAULTS, 36.0, seed=0, order_seed=1, stream_hash="hash-o1", forgetting=6.0)
    d = make_run(root, "d", {**KNN_DEFAULTS, "index_type": "my_index"}, 40.0, forgetting=9.0)
    z = make_run(root, "z", {"name": "zeroshot"}, 10.0, memory=(0, 0), forgetting=1.0)
    write_class_scores(a, [(0, "wall", 0, 50.0), (1, "sky", 1, 20.0), (2, "tree", 1, None)])
    write_class_scores(b, [(0, "wall", 1, 70.0), (1, "sky", 0, 40.0), (2, "tree", 0, None)])
    write_class_scores(d, [(0, "wall", 0, 80.0), (1, "sky", 1, 10.0), (2, "tree", 1, 5.0)])
    write_class_scores(z, [(0, "wall", 0, 1.0), (1, "sky", 1, 2.0), (2, "tree", 1, None)])
    make_run(root, "f", KNN_DEFAULTS, 99.0, status="failed", manifest_extra={"failure": "out of memory"})
    return root


def test_terminal_table(results, capsys):
    assert main([f"results_dir={results}", "bootstrap=0"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.lstrip().startswith("#  variant"))
    assert lines[header - 1].startswith("toy (version 1), stream definition")
    rows = lines[header + 2: header + 5]
    assert [row.split()[1] for row in rows] == ["knnclip", "knnclip", "zeroshot"]  # best final mIoU first
    assert "index_type=my_index" in rows[0] and "40.0" in rows[0]
    assert re.search(r"^2  knnclip( \S+)?\s+33\.0 ± 4\.2", rows[1])  # mean ± sample std of 30 and 36 (marks)
    assert "final mIoU" in lines[header] and [row.split()[-1] for row in rows] == ["1", "2", "1"]  # n


def test_latex_booktabs_mean_std_best_in_bold(results):
    assert main([f"results_dir={results}", "bootstrap=0", "--format", "latex"]) == 0
    tex = (results / "leaderboard.tex").read_text()
    body = tex[tex.index(r"\midrule") + len(r"\midrule"): tex.index(r"\bottomrule")].strip().splitlines()
    assert tex.count(r"\begin{tabular}") == 1 and r"\toprule" in tex and tex.rstrip().endswith(r"\end{table}")
    columns = re.findall(r"p\{[^}]*\}|[lrc]", re.search(r"\\begin\{tabular\}\{(.*)\}\n", tex).group(1))
    assert all(line.endswith(r"\\") and line.count(" & ") == len(columns) - 1 for line in body)
    best, knn, zero = (line.split(" & ") for line in body)
    assert best[0].replace(r"\allowbreak{}", "") == r"\raggedright knnclip index\_type=my\_index"  # wraps
    assert best[1] == r"$\mathbf{40.0}$"  # best final mIoU, n=1
    assert knn[1] == r"$33.0 \pm 4.2$"
    forgetting = next(i for i, title in enumerate(tex.split(r"\toprule")[1].split(r"\\")[0].split(" & "))
                      if title.strip() == "forgetting")
    assert zero[forgetting] == r"$\mathbf{1.0}$" and knn[forgetting] == r"$5.0 \pm 1.4$"  # least forgetting is best


def test_latex_compiles_with_booktabs(results, tmp_path):
    import shutil
    import subprocess

    if shutil.which("pdflatex") is None or shutil.which("kpsewhich") is None or not subprocess.run(
            ["kpsewhich", "booktabs.sty"], capture_output=True, text=True).stdout.strip():
        pytest.skip("no pdflatex with booktabs (Debian: texlive-latex-base texlive-latex-recommended)")
    assert main([f"results_dir={results}", "bootstrap=0", "--format", "latex"]) == 0
    (tmp_path / "paper.tex").write_text("\\documentclass{article}\\usepackage[T1]{fontenc}\\usepackage{booktabs}"
                                        "\\begin{document}\\input{%s}\\end{document}\n" % (results / "leaderboard.tex"))
    result = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "paper.tex"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-2000:]


def test_format_is_checked(results):
    from benchmark.errors import UserError

    with pytest.raises(UserError, match="format=latx is not a report format .did you mean: latex..; registered: csv, "
                                        "html, latex, markdown, terminal"):
        main([f"results_dir={results}", "--format=latx"])


class Checker(HTMLParser):
    """Nesting, links, images and text of an HTML page."""

    def __init__(self):
        super().__init__()
        self.stack, self.errors, self.links, self.images, self.tables, self.text = [], [], [], [], 0, []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag not in VOID:
            self.stack.append(tag)
        self.tables += tag == "table"
        if tag == "a":
            self.links.append(attrs["href"])
        if tag == "img":
            self.images.append(attrs["src"])

    def handle_endtag(self, tag):
        if not self.stack or self.stack.pop() != tag:
            self.errors.append(f"unexpected </{tag}>")

    def handle_data(self, data):
        self.text.append(data)


def test_html_report_is_one_well_formed_file_with_tables_figures_and_run_files(results):
    assert main([f"results_dir={results}", "bootstrap=0"]) == 0
    page = Checker()
    page.feed((results / "leaderboard.html").read_text())
    page.close()
    assert page.errors == [] and page.stack == []
    assert page.tables >= 1 + 4 + 1  # main table, one matrix per run, the per-class table
    assert len(page.images) == 4 and all(base64.b64decode(src.split(",", 1)[1]).startswith(b"\x89PNG")
                                         for src in page.images)  # the figures, embedded
    assert all(src.startswith("data:image/png;base64,") for src in page.images)
    local = [href for href in page.links if not href.startswith(("http:", "https:", "#"))]
    assert local and all((results / href).exists() for href in local)
    assert any(href.endswith("/class_scores.csv") for href in local)
    text = " ".join(page.text)
    assert "knnclip index_type=my_index" in text and "33.0 ± 4.2" in text and "taught at step" in text
    assert "out of memory" in text  # failed runs are listed


def test_cross_method_per_class_table(results):
    assert main([f"results_dir={results}", "bootstrap=0"]) == 0
    [path] = results.glob("class_iou-*.csv")
    with open(path) as handle:
        rows = {row["class"]: row for row in csv.DictReader(handle)}
    assert list(rows["wall"]) == ["class_id", "class", "taught at step", "knnclip index_type=my_index", "knnclip",
                                  "zeroshot"]
    assert rows["wall"]["taught at step"] == "0/1"  # the two class orders of knnclip's runs differ
    assert float(rows["wall"]["knnclip"]) == pytest.approx(60.0) and float(rows["sky"]["knnclip"]) == 30.0
    assert rows["tree"]["knnclip"] == "" and float(rows["tree"]["knnclip index_type=my_index"]) == 5.0  # no GT there
    assert f"]({path.name})" in (results / "LEADERBOARD.md").read_text()
