"""sdrop.torch's eager path (sdrop._torch_eager: the operators called from C++, in one
crossing) against the path through torch.ops from Python (what torch.compile traces, and what
an input with __torch_function__ takes): the same outputs, gradients, module steps and
generator stream, the same operators seen below the Python API, and the same errors."""
import pytest

torch = pytest.importorskip("torch")
from torch.overrides import TorchFunctionMode  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

import sdrop.torch as st  # noqa: E402
from helpers import nonzero_input, same_bits  # noqa: E402

ops = torch.ops.sdrop


class ViaPython(TorchFunctionMode):
    """Active: every call takes the Python path (a mode must see the ops called), and the
    sdrop operators it sees are recorded."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if isinstance(func, torch._ops.OpOverload) and func.namespace == "sdrop":
            self.seen.append(func.overloadpacket.__name__)
        return func(*args, **(kwargs or {}))


class Dispatched(TorchDispatchMode):
    """The sdrop operators that reach the dispatcher's Python key, in order."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.namespace == "sdrop":
            self.seen.append(func.overloadpacket.__name__)
        return func(*args, **(kwargs or {}))


def train(fn, x, steps=3):
    """Forward and backward `steps` times from one manual seed: outputs, gradients, and the
    generator's next draw."""
    torch.manual_seed(11)
    out = []
    for _ in range(steps):
        xi = x.detach().clone().requires_grad_()
        y = fn(xi)
        y.backward(torch.ones_like(y))
        out.append((y.detach(), xi.grad))
    return out, torch.randint(0, 2**31, (2,))


def assert_same(a, b):
    for (ya, ga), (yb, gb) in zip(a[0], b[0]):
        assert same_bits(ya, yb) and same_bits(ga, gb)
    assert torch.equal(a[1], b[1]), "the default generator afterwards"


X = nonzero_input((3, 6, 4, 5))
CASES = {
    "dropout2d": lambda x: st.dropout2d(x, 0.5),
    "dropout2d seed": lambda x: st.dropout2d(x, 0.5, seed=2**63 + 5, offset=7),
    "dropout2d shard": lambda x: st.dropout2d(x, 0.3, shard=((3, 0, 0, 0), (6, 6, 4, 5))),
    "dropout1d": lambda x: st.dropout1d(x.flatten(2), 0.4),
    "dropout3d": lambda x: st.dropout3d(x.unsqueeze(2), 0.4),
    "spatial channels_last": lambda x: st.spatial_dropout(
        x.contiguous(memory_format=torch.channels_last), 0.5, layout="channels_last"),
    "spatial keras": lambda x: st.spatial_dropout(x, 0.2, seed=1, nan_propagate=False,
                                                  scale_in_dtype=False),
    "in place": lambda x: st.dropout2d(x * 1.0, 0.5, inplace=True),
}


@pytest.mark.parametrize("name", list(CASES))
def test_eager_path_equals_python_path(name):
    fn = CASES[name]
    eager = train(fn, X)
    with ViaPython() as mode:
        python = train(fn, X)
    assert "dropout" in mode.seen or "dropout_" in mode.seen, "the Python path was not taken"
    assert_same(eager, python)


@pytest.mark.parametrize("seed", [None, 77])
def test_modules_step_and_draw_alike_on_both_paths(seed):
    def run():
        torch.manual_seed(3)
        m = st.Dropout2d(0.5, seed=seed)
        outs = [m(X) for _ in range(3)]
        return outs, m.step, torch.randint(0, 2**31, (2,))

    eager = run()
    with ViaPython():
        python = run()
    assert all(same_bits(a, b) for a, b in zip(eager[0], python[0]))
    assert eager[1] == python[1] and torch.equal(eager[2], python[2])


def test_the_dispatcher_sees_the_same_operators():
    with Dispatched() as d:
        st.dropout2d(X, 0.5)
        st.dropout2d(X, 0.5, seed=4)
        st.Dropout2d(0.5, seed=4)(X)
        st.dropout2d(X.clone(), 0.5, inplace=True)
    assert d.seen == ["draw_seed", "dropout", "dropout", "seeded_step", "dropout",
                      "draw_seed", "dropout_"]


class Tagged(torch.Tensor):
    """A subclass whose __torch_function__ counts the calls it sees."""
    calls = 0

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        cls.calls += 1
        return super().__torch_function__(func, types, args, kwargs or {})


def test_torch_function_subclasses_see_the_operator_calls():
    x = X.as_subclass(Tagged)
    Tagged.calls = 0
    y = st.dropout2d(x, 0.5)
    assert type(y) is Tagged and Tagged.calls > 0
    torch.manual_seed(1)
    a = st.dropout2d(x, 0.5)
    torch.manual_seed(1)
    assert same_bits(a.as_subclass(torch.Tensor), st.dropout2d(X, 0.5))


def test_inplace_returns_the_input_itself():
    x = X.clone()
    v = x._version
    assert st.dropout2d(x, 0.5, inplace=True) is x and x._version > v
    m = st.Dropout2d(0.5, inplace=True, seed=3)
    assert m(x) is x


def test_errors_are_the_python_exceptions_of_the_op_path():
    with pytest.raises(ValueError, match="mask_axes 0x10 has bits at or above x.ndim"):
        st.spatial_dropout(torch.ones(2, 3, 4), 0.5, mask_axes=0x10)
    with pytest.raises(NotImplementedError, match="x.dtype int32 is not supported"):
        st.spatial_dropout(torch.ones(2, 3, dtype=torch.int32), 0.5)
    with pytest.raises(ValueError, match="must be <= shard.logical_shape"):
        st.dropout2d(X, 0.5, shard=((1, 0, 0, 0), tuple(X.shape)))
    with pytest.raises(ValueError, match="offset= needs seed="):
        st.dropout2d(X, 0.5, offset=3)
    with pytest.raises(ValueError, match=r"seed must be in \[0, 2\*\*64\)"):
        st.dropout2d(X, 0.5, seed=-1)
