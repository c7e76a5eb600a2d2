"""Runs on the public demo draw (manifest data.public_draw) are labelled so and never ranked by --isolated-only."""


def test_the_public_draw_is_labelled_and_left_out_of_isolated_only(tmp_path, capsys):
    from benchmark.leaderboard.command import main
    from run_folders import KNN_DEFAULTS, make_run

    root = tmp_path / "results"
    isolated = {"protocol": {"ground_truth_access": None}, "execution": {"isolate": True, "sandbox": True}}
    make_run(root, "private", KNN_DEFAULTS, 30.0, manifest_extra={**isolated, "data": {"public_draw": False}})
    make_run(root, "public", {**KNN_DEFAULTS, "k": 3}, 100.0,
             manifest_extra={**isolated, "data": {"public_draw": True}})
    assert main([f"results_dir={root}"]) == 0
    assert "[public draw]" in capsys.readouterr().out
    assert main([f"results_dir={root}", "--isolated-only"]) == 0
    out = capsys.readouterr().out
    assert "left out 1 run(s) that did not run with isolate=true or ran on the public demo draw" in out
    assert "[public draw]" not in out
