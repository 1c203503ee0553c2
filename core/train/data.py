"""Training samples: the split's Samples, augmented with a seed derived from (run seed, epoch,
index) so that any step is reproducible (resume, DDP ranks), then prepared by the model's own
``prepare`` in DataLoader workers (decoding six JPEGs per sample is the CPU-bound part)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from ..data.augment import TARGETS_KEY, AugmentConfig, random_augment


class TrainSamples(torch.utils.data.Dataset):
    """Item ``(epoch, index)`` -> ``(inputs, sample)``: the augmented Sample (with the model's loss
    targets in ``extra`` when its spec draws them) and its model inputs."""

    def __init__(
        self, dataset: Any, prepare: Callable[[Any, Any], dict[str, Any]], model: Any, augment: AugmentConfig | None,
        seed: int, targets: Callable[[Any, Any], Any] | None = None,
    ) -> None:
        self.dataset, self.prepare, self.model = dataset, prepare, model
        self.augment, self.seed, self.targets = augment, seed, targets

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> tuple[dict[str, Any], Any]:
        epoch, index = key
        sample = self.dataset[index]
        if self.augment is not None:
            rng = np.random.default_rng([self.seed, epoch, index])
            sample = random_augment(sample, self.augment, rng)
        with torch.no_grad():
            inputs = self.prepare(self.model, sample)
            if self.targets is not None:
                sample.extra[TARGETS_KEY] = self.targets(self.model, sample)
        sample._image_loader = None  # nothing heavy travels back from the worker
        return inputs, sample


def epoch_order(n: int, epoch: int, seed: int, rank: int = 0, world: int = 1) -> list[int]:
    """This rank's sample indices for ``epoch``: one seeded permutation shared by all ranks, padded
    to a multiple of ``world`` by repeating its start, then strided by rank (DistributedSampler's rule)."""
    g = torch.Generator().manual_seed(seed * 1000003 + epoch)
    order = torch.randperm(n, generator=g).tolist()
    total = -(-n // world) * world
    order += order[: total - n]
    return order[rank:total:world]


def batches(order: list[int], epoch: int, batch_size: int) -> list[list[tuple[int, int]]]:
    """The epoch's batches of ``(epoch, index)`` keys (the last one may be short)."""
    return [[(epoch, i) for i in order[k : k + batch_size]] for k in range(0, len(order), batch_size)]


def _collate(items: list[tuple[dict[str, Any], Any]]) -> tuple[list[dict[str, Any]], list[Any]]:
    return [i for i, _ in items], [s for _, s in items]


def limit_threads(n: int) -> None:
    """Cap this process's intra-op thread pools at ``n``: torch's, OpenCV's and numpy's BLAS.

    numpy's OpenBLAS starts one thread per core and busy-waits between calls; the LiDAR transforms
    in every sample are BLAS matmuls, so 14 DataLoader workers on a 32-core machine run 14 x 32
    threads (suspected cause of 20 BEVDet samples/s from 14 workers; one prepares ~13/s alone)."""
    torch.set_num_threads(n)
    try:
        import cv2

        cv2.setNumThreads(n)
    except ImportError:
        pass
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    threadpool_limits(n)


def _worker_init(_: int) -> None:
    limit_threads(1)  # many workers x many intra-op threads would oversubscribe the cores


def loader(
    data: torch.utils.data.Dataset, batch_list: list[list[Any]], workers: int, seed: int = 0, pin: bool = False
) -> Iterator:
    """Batches in the given order; ``workers`` > 0 prepares them in forked processes, ``pin``
    puts them in page-locked memory (so the copy to a GPU overlaps compute). The loader draws its
    worker seed from its own generator, not the global RNG, so a resumed run's global RNG state
    matches an uninterrupted one."""
    return iter(
        torch.utils.data.DataLoader(
            data, batch_sampler=batch_list, num_workers=workers, collate_fn=_collate,
            worker_init_fn=_worker_init if workers else None, prefetch_factor=4 if workers else None,
            multiprocessing_context="fork" if workers else None, generator=torch.Generator().manual_seed(seed),
            pin_memory=pin,
        )
    )
