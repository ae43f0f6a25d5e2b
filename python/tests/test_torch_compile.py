"""torch.compile (fullgraph, no recompilation across steps), torch.export and activation
checkpointing: the same masks, outputs and gradients, bit for bit, as eager without
checkpointing, and the same generator stream afterwards, with both kinds of seed."""
import pytest

torch = pytest.importorskip("torch")
import torch._dynamo  # noqa: E402
from torch._dynamo.testing import CompileCounterWithBackend  # noqa: E402
from torch.utils.checkpoint import checkpoint  # noqa: E402

import sdrop.torch as st  # noqa: E402
from helpers import same_bits  # noqa: E402

SEEDS = [None, 2024]


def inputs(step):
    g = torch.Generator().manual_seed(step)
    return torch.randn(4, 8, 5, 5, generator=g).requires_grad_()


def run(seed, *, ckpt=None, compiled=False, steps=3, backend="inductor"):
    """Three training steps of a block with an sdrop module. The ops around it are exact in
    any order (scaling by powers of two, relu), so eager and compiled must agree bitwise."""
    torch._dynamo.reset()
    torch.manual_seed(42)
    drop = st.Dropout2d(0.5, seed=seed)

    def block(x):
        return drop(x * 2).relu() * 4

    def f(x):
        if ckpt is None:
            return block(x)
        return checkpoint(block, x, use_reentrant=ckpt == "reentrant")

    counter = CompileCounterWithBackend(backend)
    g = torch.compile(f, fullgraph=True, backend=counter) if compiled else f
    outs = []
    for step in range(steps):
        x = inputs(step)
        y = g(x)
        y.sum().backward()
        outs.append((y.detach(), x.grad))
    after = torch.randint(0, 2**31, (4,))  # the global stream after the run
    return outs, drop.step, after, counter.frame_count


def assert_same_run(a, b):
    for (ya, ga), (yb, gb) in zip(a[0], b[0]):
        assert same_bits(ya, yb) and same_bits(ga, gb)
    assert a[1] == b[1], "the module's step"
    assert torch.equal(a[2], b[2]), "the default generator after the run"


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("ckpt", ["reentrant", "non_reentrant"])
def test_eager_checkpointing_changes_nothing(seed, ckpt):
    assert_same_run(run(seed), run(seed, ckpt=ckpt))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("ckpt", [None, "non_reentrant"])
def test_compiled_equals_eager_and_compiles_once(seed, ckpt):
    eager = run(seed)
    compiled = run(seed, ckpt=ckpt, compiled=True)
    assert_same_run(eager, compiled)
    assert compiled[3] == 1, "recompiled across steps"


def test_a_model_with_sdrop_modules_is_one_graph_across_steps():
    torch._dynamo.reset()
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), st.Dropout2d(0.3, seed=1),
                                torch.nn.ReLU(), st.SpatialDropout(0.2))
    counter = CompileCounterWithBackend("inductor")
    compiled = torch.compile(model, fullgraph=True, backend=counter)  # fullgraph: no breaks
    for _ in range(4):
        compiled(torch.randn(2, 3, 9, 9, requires_grad=True)).sum().backward()
    assert counter.frame_count == 1
    assert model[1].step == 4


@pytest.mark.parametrize("seed", SEEDS)
def test_torch_export(seed):
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), st.Dropout2d(0.5, seed=seed))
    x = torch.randn(2, 3, 8, 8)
    ep = torch.export.export(model, (x,))
    code = ep.graph_module.code
    assert "sdrop.dropout" in code
    assert ("sdrop.seeded_step" if seed is not None else "sdrop.draw_seed") in code
    if seed is not None:
        # The exported program runs the op as eager does: same mask for the same step.
        reference = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), st.Dropout2d(0.5, seed=seed))
        reference.load_state_dict(model.state_dict())
        exported_out = ep.module()(x)
        assert same_bits((exported_out != 0), (reference(x) != 0))
