"""The manifest's data.public_draw: true for runs on the demo's public draw (secret 0), false otherwise."""
import json


def test_a_run_on_the_public_draw_is_recorded_as_such(run_demo):
    run_dir, _ = run_demo("method=zeroshot", "stream=demo_4steps", "eval.max_images=2", "stream.num_steps=1",
                          "stream.max_train_images_per_step=1", "eval.initial=false")
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["data"]["public_draw"] is True  # the tests' demo root is drawn with secret 0


def test_only_a_copy_drawn_with_secret_0_is_public(tmp_path):
    from benchmark.data.demo import public_draw

    for name, secret in (("public", 0), ("private", 12345)):
        (tmp_path / name / "images" / "validation").mkdir(parents=True)
        (tmp_path / name / "DONE.json").write_text(json.dumps({"secret": secret}))
    assert public_draw(tmp_path / "public" / "images" / "validation") is True
    assert public_draw(tmp_path / "private" / "images" / "validation") is False
    assert public_draw(None) is False and public_draw(tmp_path / "elsewhere" / "images" / "x") is False
