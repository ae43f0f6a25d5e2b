"""Drop-in modules and functions: torch.nn's signatures and behaviour, sdrop's masks, and
randomness that torch.manual_seed, fork_rng and state_dict reproduce."""
import inspect

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import sdrop.torch as st  # noqa: E402
from helpers import nonzero_input, same_bits  # noqa: E402


@pytest.mark.parametrize("ours,theirs", [(st.Dropout1d, nn.Dropout1d), (st.Dropout2d, nn.Dropout2d),
                                         (st.Dropout3d, nn.Dropout3d)])
def test_constructor_and_call_signatures_match_torch(ours, theirs):
    mine = inspect.signature(ours.__init__).parameters
    for name, param in inspect.signature(theirs.__init__).parameters.items():
        assert name in mine and mine[name].default == param.default, name
    assert mine["seed"].kind == inspect.Parameter.KEYWORD_ONLY
    assert list(inspect.signature(ours.forward).parameters) == ["self", "input"]
    m = ours(0.25, True)
    assert m.p == 0.25 and m.inplace is True
    with pytest.raises(ValueError, match="between 0 and 1"):
        ours(1.5)


@pytest.mark.parametrize("fn,theirs", [(st.dropout1d, F.dropout1d), (st.dropout2d, F.dropout2d),
                                       (st.dropout3d, F.dropout3d)])
def test_functional_signatures_match_torch(fn, theirs):
    mine = inspect.signature(fn).parameters
    for name, param in inspect.signature(theirs).parameters.items():
        assert name in mine and mine[name].default == param.default, name
    for kw in ("seed", "offset"):
        assert mine[kw].kind == inspect.Parameter.KEYWORD_ONLY


def test_eval_mode_p_zero_and_empty_return_the_input_itself():
    x = torch.randn(2, 4, 3, 3)
    m = st.Dropout2d(0.5).eval()
    assert m(x) is x
    assert st.dropout2d(x, 0.5, training=False) is x
    assert st.dropout2d(x, 0.0) is x
    e = torch.empty(0, 4, 3, 3)
    assert st.dropout2d(e, 0.5) is e


def test_whole_channels_are_dropped_or_scaled():
    x = nonzero_input((8, 32, 5, 5))
    y = st.Dropout2d(0.5)(x)
    kept = (y != 0).flatten(2)
    assert torch.all(kept.all(2) | (~kept).all(2))
    k = kept.all(2)
    assert 0 < int(k.sum()) < k.numel()
    assert torch.equal(y[k], x[k] * 2.0)


def test_a_3d_input_to_dropout2d_is_refused_naming_both_readings():
    x = nonzero_input((4, 6, 5))
    with pytest.raises(ValueError) as e:
        st.dropout2d(x, 0.5)
    msg = str(e.value)
    assert "(C, H, W)" in msg and "(N, C, L)" in msg and "batched=" in msg
    with pytest.raises(ValueError, match="batched="):
        st.Dropout2d(0.5)(x)
    # batched=False: one draw per channel of an unbatched image
    y = st.dropout2d(x, 0.5, batched=False, seed=1)
    kept = (y != 0).flatten(1)
    assert torch.all(kept.all(1) | (~kept).all(1))
    # batched=True: torch's reading, (N, C, L), one draw per (sample, channel)
    y = st.Dropout2d(0.5, batched=True, seed=1)(x)
    assert same_bits(y, st.dropout1d(x, 0.5, seed=1))


def test_unbatched_inputs_of_dropout1d_and_dropout3d_as_torch():
    x = nonzero_input((6, 5))
    y = st.dropout1d(x, 0.5, seed=2)
    kept = y != 0
    assert torch.all(kept.all(1) | (~kept).all(1))
    x3 = nonzero_input((6, 2, 3, 3))  # (C, D, H, W)
    y3 = st.dropout3d(x3, 0.5, seed=2)
    kept = (y3 != 0).flatten(1)
    assert torch.all(kept.all(1) | (~kept).all(1))
    with pytest.raises(ValueError, match="dropout1d"):
        st.dropout1d(torch.ones(2, 3, 4, 5), 0.5)


def test_seed_none_follows_torchs_generator():
    x = nonzero_input((4, 16, 3, 3))
    m = st.Dropout2d(0.5)
    torch.manual_seed(10)
    a = [m(x) for _ in range(3)]
    torch.manual_seed(10)
    b = [m(x) for _ in range(3)]
    assert all(same_bits(u, v) for u, v in zip(a, b))
    assert not same_bits(a[0], a[1])  # each call draws a new mask
    torch.manual_seed(10)
    with torch.random.fork_rng():
        m(x)
        m(x)
    assert same_bits(m(x), a[0])  # calls inside fork_rng left the generator alone


def test_explicit_seed_is_independent_of_torch_and_resumes_from_state_dict():
    x = nonzero_input((4, 16, 3, 3))
    m = st.Dropout2d(0.5, seed=1234)
    torch.manual_seed(0)
    first = [m(x) for _ in range(3)]
    m2 = st.Dropout2d(0.5, seed=1234)
    torch.manual_seed(999)  # another global stream: the same masks
    assert all(same_bits(u, m2(x)) for u in first)
    assert m.step == 3
    sd = m.state_dict()
    assert any(k.endswith("_extra_state") for k in sd)
    nxt = m(x)
    resumed = st.Dropout2d(0.5, seed=1)  # another seed, overwritten by the checkpoint
    resumed.load_state_dict(sd)
    assert resumed.seed == 1234 and resumed.step == 3
    assert same_bits(resumed(x), nxt)
    # a full 64-bit seed round-trips
    big = st.Dropout1d(0.5, seed=2**64 - 1)
    assert big.seed == 2**64 - 1
    again = st.Dropout1d(0.5)
    again.load_state_dict(big.state_dict())
    assert again.seed == 2**64 - 1


def test_module_state_stays_on_the_cpu_and_out_of_buffers():
    m = nn.Sequential(nn.Conv2d(3, 4, 1), st.Dropout2d(0.5, seed=3))
    assert [n for n, _ in m.named_buffers()] == []  # DDP has nothing of ours to broadcast
    m.to(torch.float64)
    assert m[1]._seed.dtype == torch.int64 and m[1]._seed.device.type == "cpu"


def test_spatial_dropout_layouts_drop_the_same_pairs():
    x = nonzero_input((4, 8, 5, 6))
    xl = x.permute(0, 2, 3, 1).contiguous()
    a = st.SpatialDropout(0.5, seed=5)(x)
    b = st.SpatialDropout(0.5, "channels_last", seed=5)(xl)
    assert same_bits(a.permute(0, 2, 3, 1), b)
    # any mask axes: element-wise dropout
    e = st.SpatialDropout(0.5, mask_axes=(0, 1, 2, 3), seed=5)(x)
    assert not torch.all((e != 0).flatten(2).all(2) | (e == 0).flatten(2).all(2))
    assert "seed=5" in repr(st.SpatialDropout(0.5, seed=5))
    with pytest.raises(ValueError, match="layout"):
        st.SpatialDropout(0.5, "NHWC")


def test_data_parallel_shard_is_the_slice_of_the_global_batch():
    X = nonzero_input((8, 6, 3, 3))
    whole = st.Dropout2d(0.5, seed=77)(X)
    for rank in range(2):
        part = st.Dropout2d(0.5, seed=77, data_parallel=(rank, 2))(X[4 * rank:4 * rank + 4])
        assert same_bits(part, whole[4 * rank:4 * rank + 4])
    # channel split (tensor parallel) through an explicit shard
    part = st.dropout2d(X[:, 3:], 0.5, seed=77, offset=0, shard=((0, 3, 0, 0), tuple(X.shape)))
    assert same_bits(part, whole[:, 3:])
