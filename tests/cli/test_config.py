import pytest

from benchmark.config import load_config, method_config
from benchmark.errors import UserError


def test_defaults_compose_and_validate():
    cfg = load_config([])
    assert cfg.method.name == "knnclip" and cfg.stream.name == "demo_4steps" and cfg.model.name == "tiny_random"
    assert cfg.results_dir == "results" and cfg.seed == 0 and cfg.eval.vocabulary == "seen"


def test_group_and_dotted_overrides():
    cfg = load_config(["method=zeroshot", "stream=demo_panoptic_4steps", "seed=7", "stream.order_seed=3",
                       "results_dir=/tmp/x", "eval.vocabulary=all"])
    assert (cfg.method.name, cfg.stream.name, cfg.seed, cfg.stream.order_seed) == ("zeroshot", "demo_panoptic_4steps", 7, 3)
    assert cfg.results_dir == "/tmp/x" and cfg.stream.panoptic is True and cfg.eval.vocabulary == "all"


def test_method_parameters_typed_including_keyword_key():
    cfg = load_config(["method=knnclip", "method.k=5", "method.lambda=0.25", "method.index=HNSW32"])
    assert cfg.method.k == 5 and cfg.method["lambda"] == 0.25
    params = method_config(cfg)
    assert params.k == 5 and params.lambda_ == 0.25 and params.index == "HNSW32"


@pytest.mark.parametrize("overrides, expected", [
    (["method=knnclp"], "unknown method 'knnclp' (did you mean: knnclip?)"),
    (["stream=demo_4step"], "unknown stream 'demo_4step' (did you mean: demo_4steps"),
    (["model=tiny"], "unknown model 'tiny' (did you mean: tiny_random?)"),
    (["seeed=1"], "unknown config key 'seeed' (did you mean: seed?)"),
    (["eval.vocabulry=all"], "unknown config key 'eval.vocabulry' (did you mean: eval.vocabulary?)"),
    (["method.kk=3"], "unknown config key 'method.kk' (did you mean: method.k?)"),
    (["seed=abc"], "invalid value for seed"),
    (["method.lambda=high"], "invalid value for method.lambda"),
    (["eval.vocabulary=some"], "eval.vocabulary=some is not one of: seen, all"),
    (["model.input_size=0"], "model.input_size must be positive"),
])
def test_bad_overrides_give_one_line_with_suggestion(overrides, expected):
    with pytest.raises(UserError) as info:
        load_config(overrides)
    assert expected in str(info.value)
    assert "\n" not in str(info.value)
