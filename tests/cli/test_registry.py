import pytest

from benchmark.errors import UserError
from benchmark.registry import Registry


class Base:
    pass


def test_register_get_list():
    reg: Registry[type[Base]] = Registry("widget", base=Base)

    @reg.register("alpha")
    class Alpha(Base):
        pass

    reg.register("beta", type("Beta", (Base,), {}))
    assert reg.get("alpha") is Alpha
    assert reg.names() == ["alpha", "beta"]
    assert reg.names(filter="alp") == ["alpha"]
    assert "beta" in reg and len(reg) == 2


def test_duplicates_refused():
    reg: Registry[type[Base]] = Registry("widget", base=Base)
    reg.register("alpha", type("A", (Base,), {}))
    with pytest.raises(ValueError, match="already registered"):
        reg.register("alpha", type("B", (Base,), {}))


def test_base_class_checked():
    reg: Registry[type[Base]] = Registry("widget", base=Base)
    with pytest.raises(TypeError, match="subclass of Base"):
        reg.register("x", int)


def test_unknown_name_suggests_closest():
    reg: Registry[type[Base]] = Registry("method", base=Base)
    for name in ("knnclip", "zeroshot", "finetune"):
        reg.register(name, type(name, (Base,), {}))
    with pytest.raises(UserError) as info:
        reg.get("knnclp")
    message = str(info.value)
    assert "unknown method 'knnclp'" in message and "did you mean: knnclip" in message
    assert "\n" not in message
