"""Data parallelism with torch.distributed (gloo, two processes on localhost, DDP): each rank
runs its shard of the global batch; its output and its gradients equal the matching slice
of one process running the whole batch (docs/semantics.md#shards), and the ranks draw
different masks."""
import os
import socket
import sys

import pytest

torch = pytest.importorskip("torch")
import torch.distributed as dist  # noqa: E402
import torch.multiprocessing as mp  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
WORLD, LOCAL_BATCH = 2, 4


class Scale(torch.nn.Module):
    """A learned per-channel scale: exact element by element, so a shard's output is the
    slice of the whole batch's to the bit (a convolution's blocking could depend on the
    batch size)."""

    def __init__(self, channels):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.linspace(0.5, 2.0, channels).reshape(1, -1, 1, 1))

    def forward(self, x):
        return x * self.weight


def model(seed_mode):
    import sdrop.torch as st
    seed = None if seed_mode == "generator" else 4321
    return Scale(16), st.Dropout2d(0.5, seed=seed)


def global_batch():
    g = torch.Generator().manual_seed(7)
    return torch.randn(WORLD * LOCAL_BATCH, 16, 6, 6, generator=g)


def worker(rank, port, seed_mode, out_dir):
    sys.path.insert(0, HERE)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    torch.set_num_threads(1)
    conv, drop = model(seed_mode)
    drop.data_parallel = (rank, WORLD)
    net = torch.nn.parallel.DistributedDataParallel(torch.nn.Sequential(conv, drop))
    x = global_batch()[rank * LOCAL_BATCH:(rank + 1) * LOCAL_BATCH].requires_grad_()
    torch.manual_seed(11)  # every rank's generator alike, as DDP training scripts seed them
    y = net(x)
    y.square().sum().backward()  # DDP averages the weight gradient over the ranks
    outs = [torch.empty_like(y) for _ in range(WORLD)]
    dist.all_gather(outs, y.detach())
    if rank == 0:
        torch.save({"y": torch.cat(outs), "weight_grad": conv.weight.grad,
                    "x_grad": x.grad}, os.path.join(out_dir, f"{seed_mode}.pt"))
    else:
        torch.save({"x_grad": x.grad}, os.path.join(out_dir, f"{seed_mode}_1.pt"))
    # Both ranks done before either tears gloo down: a rank that destroyed its group while the
    # other was still in it aborted once ("terminate called without an active exception") on
    # a loaded machine.
    dist.barrier()
    dist.destroy_process_group()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("seed_mode", ["generator", "explicit"])
def test_two_gloo_ranks_equal_one_process_over_the_whole_batch(seed_mode, tmp_path):
    mp.spawn(worker, args=(free_port(), seed_mode, str(tmp_path)), nprocs=WORLD, join=True)
    got = torch.load(tmp_path / f"{seed_mode}.pt")
    x_grad_1 = torch.load(tmp_path / f"{seed_mode}_1.pt")["x_grad"]
    conv, drop = model(seed_mode)
    x = global_batch().requires_grad_()
    torch.manual_seed(11)
    y = drop(conv(x))
    y.square().sum().backward()
    assert torch.equal(got["y"], y.detach())
    assert torch.equal(got["x_grad"], x.grad[:LOCAL_BATCH])
    assert torch.equal(x_grad_1, x.grad[LOCAL_BATCH:])
    # DDP's average of the local gradients is the whole batch's gradient over the world size
    assert torch.allclose(got["weight_grad"], conv.weight.grad / WORLD, rtol=1e-5, atol=1e-6)
    # the ranks' masks differ (their shards are different parts of the logical tensor)
    keep = (y != 0).flatten(2).any(2)
    assert not torch.equal(keep[:LOCAL_BATCH], keep[LOCAL_BATCH:])
