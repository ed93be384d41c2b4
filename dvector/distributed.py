"""Multi-process training helpers (torchrun): one process per GPU, or per CPU share with gloo.

``python train.py`` runs as one process; ``torchrun --nproc_per_node=N train.py`` sets
WORLD_SIZE, RANK and LOCAL_RANK, and each rank trains on its shard of the data.
"""
import os

import torch
import torch.distributed as dist


def world_size() -> int:
    return int(os.environ.get('WORLD_SIZE', '1'))


def rank() -> int:
    return int(os.environ.get('RANK', '0'))


def is_main_process() -> bool:
    """Only rank 0 prints, plots and writes checkpoints."""
    return rank() == 0


def setup(use_cuda: bool) -> torch.device:
    """Start the process group when launched by torchrun; return this rank's device."""
    cuda = use_cuda and torch.cuda.is_available()
    if world_size() > 1 and not dist.is_initialized():
        dist.init_process_group(backend='nccl' if cuda else 'gloo')
    if cuda:
        local = int(os.environ.get('LOCAL_RANK', '0'))
        torch.cuda.set_device(local)
        return torch.device('cuda', local)
    return torch.device('cpu')


def wait_for_all() -> None:
    """Finish together: a rank that exits while rank 0 still writes can abort gloo's peers."""
    if dist.is_initialized():
        dist.barrier()


def cleanup() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def sum_across_ranks(values: list, device: torch.device) -> list:
    """Element-wise sum of a list of numbers over all ranks (identity in one process)."""
    if not dist.is_initialized():
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()
