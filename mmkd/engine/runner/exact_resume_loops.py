"""Training loops that continue a resumed run exactly where it stopped.

A run killed after its checkpoint at iteration ``k`` and resumed with
``--resume`` should end with the weights of an uninterrupted run. MMEngine
0.10.7 gets two things wrong for that:

- ``EpochBasedTrainLoop`` restarts the interrupted epoch from its first batch
  (``runner.iter`` continues from ``k``), so the batches seen before the
  checkpoint are trained twice and the epoch ends ``k`` iterations late.
- No loop restores the random number generators. After a resume, Python's
  ``random``, numpy's and torch's global generators continue from the state
  that seeding, model building and the dataloader skip left, not from the
  state at the checkpoint: random augmentations and every random draw of the
  model (dropout, the interpolation of a WGAN-GP penalty, ...) differ.

:class:`ExactResumeEpochBasedTrainLoop` skips the batches of the interrupted
epoch that were already trained (loading them, so that the sampler, the
workers and the pipelines advance exactly as before) and
:class:`ExactResumeIterBasedTrainLoop` keeps MMEngine's skip; both then set
the generators to the states stored in the checkpoint by
:class:`mmkd.engine.hooks.SafeCheckpointHook`, right before the first batch
that was not trained yet. See docs/en/reliability.md.
"""
import logging
import random
from typing import Optional

import numpy as np
import torch
from mmengine.logging import print_log
from mmengine.runner import EpochBasedTrainLoop, IterBasedTrainLoop

from mmkd.registry import LOOPS


def get_rng_state() -> dict:
    """States of Python's, numpy's and torch's global generators (and of
    every CUDA device's, once CUDA is initialised), as plain containers and
    CPU tensors, so that ``torch.load(weights_only=True)`` reads them."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    state = dict(
        python=random.getstate(),
        numpy=(str(name), keys.tolist(), int(pos), int(has_gauss),
               float(gauss)),
        torch=torch.get_rng_state())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = [s.cpu() for s in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(state: dict) -> None:
    """Set the generators to a state from :func:`get_rng_state`."""
    version, internal, gauss = state['python']
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state['numpy']
    np.random.set_state(
        (name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    # resume maps the checkpoint to the training device; torch wants CPU
    torch.set_rng_state(state['torch'].cpu())
    if 'cuda' in state and torch.cuda.is_available():
        if len(state['cuda']) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([s.cpu() for s in state['cuda']])
        else:
            print_log(
                f"The checkpoint holds the generator states of "
                f"{len(state['cuda'])} CUDA devices, this machine has "
                f'{torch.cuda.device_count()}: CUDA generators not restored',
                logger='current',
                level=logging.WARNING)


class _RestoreRngBeforeNext:
    """Iterator wrapper: set the generators to ``state`` right before the
    ``at``-th ``next`` (0-based), then pass everything through."""

    def __init__(self, iterator, at: int, state: dict) -> None:
        self._iterator, self._at, self._state = iterator, at, state
        self._count = 0

    def __iter__(self):
        return self

    def __next__(self):
        if self._state is not None and self._count == self._at:
            set_rng_state(self._state)
            self._state = None
        self._count += 1
        return next(self._iterator)


@LOOPS.register_module()
class ExactResumeEpochBasedTrainLoop(EpochBasedTrainLoop):
    """``EpochBasedTrainLoop`` that resumes inside an epoch exactly.

    Same arguments and behaviour as MMEngine's loop when nothing is resumed.
    After resuming from a checkpoint taken inside epoch ``e`` at iteration
    ``k`` (``CheckpointHook(by_epoch=False)``), epoch ``e`` goes on with its
    batch ``k - e * len(dataloader)`` (the sampler's order for epoch ``e`` is
    the same, ``DistSamplerSeedHook`` sets it); the skipped batches are
    loaded and dropped. ``resume_rng_state`` is set by
    :class:`~mmkd.engine.hooks.SafeCheckpointHook` when it resumes; the
    generators get it before the first batch that was not trained yet.
    """

    resume_rng_state: Optional[dict] = None

    def run_epoch(self) -> None:
        state, self.resume_rng_state = self.resume_rng_state, None
        skip = self._iter - self._epoch * len(self.dataloader)
        if not 0 <= skip <= len(self.dataloader):
            print_log(
                f'Resumed at iteration {self._iter} of epoch '
                f'{self._epoch + 1}, which has {len(self.dataloader)} '
                'batches: the data loader does not match the checkpoint '
                '(another batch size or data set?); the epoch starts from '
                'its first batch',
                logger='current',
                level=logging.WARNING)
            skip = 0
        if skip == 0:
            # at an epoch boundary the states were saved after the epoch
            # before, so they apply before anything of this epoch
            if state is not None:
                set_rng_state(state)
            return super().run_epoch()

        self.runner.call_hook('before_train_epoch')
        self.runner.model.train()
        batches = iter(self.dataloader)
        print_log(
            f'Resuming inside epoch {self._epoch + 1}: skipping its first '
            f'{skip} batches, trained before the checkpoint',
            logger='current')
        for _ in range(skip):
            next(batches)
        if state is not None:
            set_rng_state(state)
        for idx, data_batch in enumerate(batches, start=skip):
            self.run_iter(idx, data_batch)
        self.runner.call_hook('after_train_epoch')
        self._epoch += 1


@LOOPS.register_module()
class ExactResumeIterBasedTrainLoop(IterBasedTrainLoop):
    """``IterBasedTrainLoop`` that restores the generators on resume.

    MMEngine's loop already skips the ``k`` batches trained before the
    checkpoint (by loading them); this one also sets the generators to the
    checkpoint's states (``resume_rng_state``, set by
    :class:`~mmkd.engine.hooks.SafeCheckpointHook`) before batch ``k``.
    """

    resume_rng_state: Optional[dict] = None

    def run(self):
        state, self.resume_rng_state = self.resume_rng_state, None
        if state is not None and self._iter > 0:
            self.dataloader_iterator = _RestoreRngBeforeNext(
                self.dataloader_iterator, self._iter, state)
        return super().run()
