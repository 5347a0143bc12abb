"""A ``CheckpointHook`` whose checkpoints survive a kill at any moment.

See docs/en/reliability.md for what the user sets and sees.
"""
import os
import os.path as osp
import re
import zipfile
from typing import Iterable, List, Optional, Tuple

from mmengine.config import Config
from mmengine.dist import all_gather_object, get_rank, get_world_size
from mmengine.dist import is_main_process
from mmengine.fileio.backends import LocalBackend
from mmengine.hooks import CheckpointHook

from mmkd.registry import HOOKS
from ..runner.exact_resume_loops import get_rng_state, set_rng_state

#: Suffix of a checkpoint (or ``last_checkpoint``) being written.
PARTIAL = '.partial'


def _fsync_path(path: str) -> None:
    """Flush a file's or a directory's data to the disk (best effort for
    directories, which some platforms cannot open)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def replace_atomically(partial: str, final: str) -> None:
    """Make the fully written ``partial`` file appear as ``final``: its data
    reaches the disk first, then one ``os.replace`` (atomic on POSIX and
    Windows), then the directory entry. A reader sees the old ``final`` or
    the new one, never a part of it."""
    _fsync_path(partial)
    os.replace(partial, final)
    _fsync_path(osp.dirname(osp.abspath(final)))


def atomic_write_text(path: str, text: str) -> None:
    """Write ``text`` to ``path`` through a ``.partial`` file."""
    with open(path + PARTIAL, 'w') as f:
        f.write(text)
    replace_atomically(path + PARTIAL, path)


def checkpoint_problem(path: str) -> Optional[str]:
    """Why ``path`` is not a complete checkpoint, or None if it is.

    ``torch.save`` writes a zip archive whose central directory comes last,
    so a truncated file has none; every record's CRC-32 is checked as well
    (one read of the file). Directories (sharded checkpoints) are taken as
    they are.
    """
    if osp.isdir(path):
        return None
    if not osp.isfile(path):
        return 'missing'
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            bad = zf.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        return (f'not a complete torch checkpoint ({type(e).__name__}: {e}; '
                'a write that was interrupted?)')
    if bad is not None:
        return f'corrupt: record {bad!r} fails its CRC check'
    if not any(n == 'data.pkl' or n.endswith('/data.pkl') for n in names):
        return 'a zip archive without a torch pickle (data.pkl)'
    return None


def _step_pattern(filename_tmpl: str) -> 're.Pattern':
    prefix, _, suffix = filename_tmpl.partition('{}')
    return re.compile(re.escape(prefix) + r'(\d+)' + re.escape(suffix) + '$')


def list_checkpoints(ckpt_dir: str,
                     filename_tmpl: str) -> List[Tuple[int, str]]:
    """``(step, path)`` of the files in ``ckpt_dir`` named by
    ``filename_tmpl`` (e.g. ``'iter_{}.pth'``), newest first."""
    if not osp.isdir(ckpt_dir):
        return []
    pattern = _step_pattern(filename_tmpl)
    found = []
    for name in os.listdir(ckpt_dir):
        m = pattern.match(name)
        if m:
            found.append((int(m.group(1)), osp.join(ckpt_dir, name)))
    return sorted(found, reverse=True)


def newest_complete_checkpoint(ckpt_dir: str,
                               filename_tmpl: str,
                               exclude: Iterable[str] = ()) -> Optional[str]:
    """The complete checkpoint of ``ckpt_dir`` with the largest step."""
    skip = {osp.abspath(p) for p in exclude}
    for _, path in list_checkpoints(ckpt_dir, filename_tmpl):
        if osp.abspath(path) not in skip and checkpoint_problem(path) is None:
            return path
    return None


def resolve_auto_resume(work_dir: str, ckpt_dir: str,
                        filename_tmpl: str) -> Tuple[Optional[str], str,
                                                     bool]:
    """The checkpoint ``--resume`` (without a path) should load.

    MMEngine resumes from the file named in ``work_dir/last_checkpoint``,
    whatever state it is in, and starts from scratch (writing over the old
    checkpoints) when ``last_checkpoint`` is missing. Here the named file
    must be a complete checkpoint; otherwise the newest complete one in
    ``ckpt_dir`` is taken.

    Returns:
        tuple: The path (None: start from scratch, there is no checkpoint),
        a message for the log saying what was chosen and why, and whether
        that is another file than ``last_checkpoint`` names.

    Raises:
        RuntimeError: If checkpoints exist but none is complete.
    """
    record = osp.join(work_dir, 'last_checkpoint')
    named = None
    if osp.isfile(record):
        with open(record) as f:
            named = f.read().strip() or None
    if named is not None:
        problem = checkpoint_problem(named)
        if problem is None:
            return named, f'resuming from {named} (named in {record})', False
        # a moved work dir: the same file name next to last_checkpoint
        moved = osp.join(ckpt_dir, osp.basename(named))
        if moved != named and checkpoint_problem(moved) is None:
            return moved, (f'{record} names {named} ({problem}); resuming '
                           f'from {moved}, the same checkpoint in this work '
                           'dir'), True
        why = f'{record} names {named}, which is {problem}'
    elif osp.isfile(record):
        why = f'{record} is empty (a write that was interrupted?)'
    else:
        why = f'there is no {record}'
    fallback = newest_complete_checkpoint(
        ckpt_dir, filename_tmpl, exclude=[named] if named else [])
    if fallback is not None:
        return fallback, (f'{why}; resuming from {fallback}, the newest '
                          f'complete checkpoint in {ckpt_dir}'), True
    if named is None and not list_checkpoints(ckpt_dir, filename_tmpl):
        return None, (f'{why} and no checkpoint: training starts from '
                      'scratch'), False
    raise RuntimeError(
        f'Cannot resume: {why}, and {ckpt_dir} holds no other complete '
        f'checkpoint named like {filename_tmpl!r}. Pass --resume PATH to a '
        'complete checkpoint, or delete the damaged files (or use another '
        '--work-dir) and train without --resume to start over.')


@HOOKS.register_module()
class SafeCheckpointHook(CheckpointHook):
    """``CheckpointHook`` with crash-safe files and exact resumption.

    Same arguments as MMEngine's ``CheckpointHook``; ``tools/train.py`` uses
    it in place of a configured ``CheckpointHook``. Differences:

    - Every checkpoint and ``last_checkpoint`` is written to a ``.partial``
      file in the same directory, flushed to the disk, then renamed over the
      final name (``os.replace``). A kill or a power cut during the write
      leaves the previous files intact; the checkpoint that drops out of
      ``max_keep_ckpts`` is deleted only after the new one is complete
      (MMEngine deletes it first, so with ``max_keep_ckpts=1`` a kill during
      the write leaves no checkpoint at all). Applies to local directories;
      other storage backends are written as MMEngine does.
    - ``--resume`` without a path loads a *complete* checkpoint: if
      ``last_checkpoint`` names a missing, truncated or corrupt file, or is
      missing itself while checkpoints exist, the newest complete checkpoint
      is loaded and the log says which and why; with none, training stops
      with the reason. A damaged explicit ``--resume PATH``/``load_from``
      fails before training with the reason.
    - Each checkpoint stores the states of the Python, numpy, torch (and
      CUDA) generators of every rank (key ``rng_state``); on resume they go
      to mmkd's exact-resume train loops, which set them before the first
      batch not trained yet. Validation during training leaves the training
      generators untouched (their states are saved before it and restored
      after it), so checkpoints taken before a validation resume exactly
      too. If the checkpoint was written with another seed, the train
      sampler gets the checkpoint's seed (MMEngine re-seeds after the
      sampler was built, which changes the data order of a run without a
      fixed seed).
    - The checkpoint a run loaded (``load_from`` or ``--resume``) is never
      written over or rotated out: a ``load_from`` file in the checkpoint
      directory named like a checkpoint the run will write fails at the
      start. Warnings: a run without ``--resume`` in a work dir that already
      holds checkpoints (they will be overwritten), a resume from a
      checkpoint older than others in the directory, and a resumed
      checkpoint written with another ``model`` config.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._resuming = False
        self._runner_save = None  # Runner.save_checkpoint while patched
        self._loaded: Optional[str] = None
        self._rng_before_val: Optional[dict] = None
        self._pending_rng: Optional[dict] = None
        self._atomic = True

    # -- where the checkpoints go (before_train sets self.out_dir) --------
    def _ckpt_dir(self, runner) -> str:
        if self.out_dir is None or self.out_dir == runner.work_dir:
            return runner.work_dir
        return osp.join(self.out_dir, osp.basename(
            runner.work_dir.rstrip(osp.sep)))

    @staticmethod
    def _is_local(path) -> bool:
        return isinstance(path, str) and '://' not in path

    def before_run(self, runner) -> None:
        """Decide which checkpoint ``Runner.load_or_resume`` loads (it runs
        right after ``before_run``)."""
        self._resuming = bool(runner._resume)
        load_from = runner._load_from
        if runner._resume and load_from is None:
            path, message, fallback = resolve_auto_resume(
                runner.work_dir, self._ckpt_dir(runner), self.filename_tmpl)
            log = runner.logger.warning if fallback else runner.logger.info
            log(f'SafeCheckpointHook: {message}')
            # load_or_resume resumes from an explicit _load_from
            runner._load_from = path
            runner._resume = self._resuming = path is not None
            self._loaded = path
        elif load_from is not None and self._is_local(str(load_from)):
            load_from = str(load_from)
            problem = checkpoint_problem(load_from)
            if problem is not None:
                which = '--resume' if runner._resume else 'load_from'
                hint = newest_complete_checkpoint(
                    osp.dirname(osp.abspath(load_from)), self.filename_tmpl,
                    exclude=[load_from])
                raise ValueError(
                    f'{which} {load_from} is {problem}. '
                    + (f'The newest complete checkpoint next to it is {hint}.'
                       if hint else 'Pass a complete checkpoint.'))
            self._loaded = load_from

    def before_train(self, runner) -> None:
        super().before_train(runner)
        self._atomic = (self.file_client_args is None
                        and isinstance(self.file_backend, LocalBackend))
        if not self._atomic:
            runner.logger.warning(
                'SafeCheckpointHook: checkpoints go to a non-local storage '
                f'({self.out_dir}); they are written as MMEngine writes them '
                '(not atomically)')
            return
        runner.logger.info(
            'SafeCheckpointHook: checkpoints are written atomically '
            f'({PARTIAL} file, fsync, rename) with the generator states for '
            'an exact resume')
        if is_main_process():
            self._remove_stale_partials(runner)
        self._check_existing(runner)

    def _remove_stale_partials(self, runner) -> None:
        for folder in {self.out_dir, runner.work_dir}:
            if not osp.isdir(folder):
                continue
            for name in os.listdir(folder):
                path = osp.join(folder, name)
                # regular files only: never follow or remove anything else
                if name.endswith(PARTIAL) and osp.isfile(path) and \
                        not osp.islink(path):
                    os.remove(path)
                    runner.logger.info(
                        f'SafeCheckpointHook: removed {path}, left by a '
                        'write that was interrupted')

    def _check_existing(self, runner) -> None:
        """Warn about checkpoints this run overwrites; refuse to overwrite
        the one it loaded."""
        start = runner.epoch if self.by_epoch else runner.iter
        end = runner.max_epochs if self.by_epoch else runner.max_iters
        existing = list_checkpoints(self.out_dir, self.filename_tmpl)
        if not self._resuming and existing:
            runner.logger.warning(
                f'SafeCheckpointHook: {self.out_dir} already holds '
                f'{len(existing)} checkpoint(s) of an earlier run (newest '
                f'{osp.basename(existing[0][1])}); this run starts from '
                'scratch and overwrites those of the steps it reaches. Pass '
                '--resume to continue that run, or use another --work-dir.')
        later = [osp.basename(p) for s, p in existing if s > start]
        if self._resuming and later:
            runner.logger.warning(
                f'SafeCheckpointHook: resuming at step {start}, but '
                f'{self.out_dir} holds later checkpoints ({", ".join(later)})'
                '; they are overwritten as training reaches their steps.')
        if self._loaded is None or self._resuming or not osp.isfile(
                self._loaded) or osp.realpath(osp.dirname(
                    self._loaded)) != osp.realpath(self.out_dir):
            return
        m = _step_pattern(self.filename_tmpl).match(osp.basename(self._loaded))
        if m and start < int(m.group(1)) <= end:
            raise ValueError(
                f'load_from {self._loaded} is in the checkpoint directory '
                f'{self.out_dir}, and this run writes a checkpoint of the '
                f'same name at step {m.group(1)}, which would replace it. '
                'Copy it elsewhere and point load_from there, or train into '
                'another --work-dir.')

    # -- resuming ---------------------------------------------------------
    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if not self._resuming:
            return
        meta = checkpoint.get('meta', {})
        self._warn_other_model(runner, meta.get('cfg'))
        loop = runner._train_loop
        sampler = getattr(getattr(loop, 'dataloader', None), 'sampler', None)
        seed = meta.get('seed')
        if seed is not None and getattr(sampler, 'seed', seed) != seed:
            runner.logger.info(
                f'SafeCheckpointHook: the train sampler takes the seed of '
                f'the checkpoint ({seed}, not {sampler.seed}) so that the '
                'data order goes on as before')
            sampler.seed = seed
        saved = checkpoint.get('rng_state')
        if not hasattr(loop, 'resume_rng_state'):
            runner.logger.warning(
                f'SafeCheckpointHook: the train loop {type(loop).__name__} '
                'is not one of mmkd\'s exact-resume loops; the generator '
                'states of the checkpoint are not restored')
        elif saved is None:
            runner.logger.warning(
                'SafeCheckpointHook: the checkpoint holds no generator '
                'states (written without SafeCheckpointHook); training goes '
                'on from the right batch, with other random draws than the '
                'interrupted run')
        elif saved['world_size'] != get_world_size():
            runner.logger.warning(
                f"SafeCheckpointHook: the checkpoint was written by "
                f"{saved['world_size']} processes, this run has "
                f'{get_world_size()}; the generator states are not restored')
        else:
            loop.resume_rng_state = saved['states'][get_rank()]

    def _warn_other_model(self, runner, saved_cfg: Optional[str]) -> None:
        if not saved_cfg:
            return
        try:
            before, now = (Config.fromstring(text, file_format='.py').to_dict(
            ).get('model') for text in (saved_cfg, runner.cfg.pretty_text))
        except Exception:  # a config MMEngine cannot read back
            return
        if before != now:
            keys = sorted(
                k for k in set(before or {}) | set(now or {})
                if (before or {}).get(k) != (now or {}).get(k))
            runner.logger.warning(
                'SafeCheckpointHook: the resumed checkpoint was written by a '
                'run with another `model` config (differs in: '
                f'{", ".join(map(str, keys))}). Is this the work dir of this '
                'config? Its weights load non-strictly.')

    # -- saving -----------------------------------------------------------
    def before_val(self, runner) -> None:
        self._rng_before_val = get_rng_state()

    def after_val(self, runner) -> None:
        if self._rng_before_val is not None:
            set_rng_state(self._rng_before_val)
            self._rng_before_val = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if self._pending_rng is not None:
            checkpoint['rng_state'] = self._pending_rng

    def _save_checkpoint_with_step(self, runner, step, meta):
        if not self._atomic:
            return super()._save_checkpoint_with_step(runner, step, meta)
        # the training states: those before a validation that saves
        state = self._rng_before_val or get_rng_state()
        self._pending_rng = dict(
            world_size=get_world_size(), states=all_gather_object(state))
        dropped = None
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and
                                            self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                dropped = self.keep_ckpt_ids.popleft()
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids',
                                           list(self.keep_ckpt_ids))
        filename = self.filename_tmpl.format(step)
        self.last_ckpt = osp.join(self.out_dir, filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        try:
            self._save_atomically(
                self._runner_save or runner.save_checkpoint,
                self.out_dir,
                filename,
                save_optimizer=self.save_optimizer,
                save_param_scheduler=self.save_param_scheduler,
                meta=meta,
                by_epoch=self.by_epoch,
                backend_args=self.backend_args,
                **self.args)
        finally:
            self._pending_rng = None
        if not is_main_process():
            return
        atomic_write_text(
            osp.join(runner.work_dir, 'last_checkpoint'), self.last_ckpt)
        if dropped is not None:
            old = osp.join(self.out_dir, self.filename_tmpl.format(dropped))
            # a resumed checkpoint rotates out as usual, a load_from one not
            if self._resuming or not self._is_loaded(old):
                if osp.isfile(old):
                    os.remove(old)
                elif osp.isdir(old):
                    import shutil
                    shutil.rmtree(old)

    def _is_loaded(self, path: str) -> bool:
        return self._loaded is not None and osp.exists(path) and \
            osp.exists(self._loaded) and osp.samefile(path, self._loaded)

    def _save_atomically(self, save, out_dir, filename, *args, **kwargs):
        """``save`` (``Runner.save_checkpoint``) to ``filename + PARTIAL``,
        then the rename. ``save`` writes on the main process only."""
        final = osp.join(out_dir, filename)
        if is_main_process() and self._is_loaded(final):
            raise RuntimeError(
                f'SafeCheckpointHook: refusing to write over {final}, the '
                'checkpoint this run loaded')
        save(out_dir, filename + PARTIAL, *args, **kwargs)
        if is_main_process():
            replace_atomically(osp.join(out_dir, filename + PARTIAL), final)

    def _save_best_checkpoint(self, runner, metrics) -> None:
        if not self._atomic:
            return super()._save_best_checkpoint(runner, metrics)
        original = self._runner_save = runner.save_checkpoint

        def save(out_dir, filename, *args, **kwargs):
            self._save_atomically(original, out_dir, filename, *args,
                                  **kwargs)

        # MMEngine's best-checkpoint logic, with atomic writes
        runner.save_checkpoint = save
        try:
            super()._save_best_checkpoint(runner, metrics)
        finally:
            del runner.save_checkpoint
            self._runner_save = None
