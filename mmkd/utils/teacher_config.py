"""Resolve a teacher config given as a relative path, as ``_base_`` does."""
import os
import os.path as osp
from typing import List, Optional

from mmengine.config import Config


def _config_chain(filename: str, seen: Optional[set] = None) -> List[str]:
    """``filename`` and its local ``_base_`` files, recursively, in order."""
    seen = set() if seen is None else seen
    filename = osp.abspath(filename)
    if filename in seen or not osp.isfile(filename):
        return []
    seen.add(filename)
    chain = [filename]
    try:
        bases = Config._get_base_files(filename)
    except Exception:  # a syntax error is reported by Config itself
        bases = []
    for base in bases:
        if '::' in base:  # a package config names no local teacher file
            continue
        chain += _config_chain(
            osp.join(osp.dirname(filename), base), seen)
    return chain


def teacher_config_candidates(path: str, cfg_file: Optional[str]) -> List[str]:
    """Where a relative teacher config ``path`` is looked for, in order:
    beside each config file (the file, then its ``_base_`` files) that
    names it, beside the other files of the chain, then the working
    directory."""
    chain = _config_chain(cfg_file) if cfg_file else []

    def names(file: str) -> bool:
        with open(file, encoding='utf-8') as f:
            return path in f.read()

    # files naming the path first, each group in chain order (stable sort)
    ordered = sorted(chain, key=lambda f: not names(f))
    dirs = []
    for file in ordered:
        if osp.dirname(file) not in dirs:
            dirs.append(osp.dirname(file))
    if os.getcwd() not in dirs:
        dirs.append(os.getcwd())
    return [osp.normpath(osp.join(d, path)) for d in dirs]


def resolve_teacher_configs(cfg: Config) -> None:
    """Make ``cfg.model.teacher.config`` absolute when it is a relative path.

    A relative path is resolved from the config file that names it (the
    way ``_base_`` paths are), not from the working directory; package
    configs (``'mmdet::...'``) and absolute paths are left as they are.

    Raises:
        FileNotFoundError: No candidate exists; the message lists every
            place looked at.
    """
    model = cfg.get('model')
    teacher = model.get('teacher') if isinstance(model, dict) else None
    path = teacher.get('config') if isinstance(teacher, dict) else None
    if not isinstance(path, str) or '::' in path or osp.isabs(path):
        return
    candidates = teacher_config_candidates(path, cfg.filename)
    for candidate in candidates:
        if osp.isfile(candidate):
            teacher['config'] = candidate
            return
    raise FileNotFoundError(
        f"teacher config '{path}' was not found. A relative path is looked "
        'for beside the config file that names it, then beside its other '
        'config files, then in the working directory; looked at:\n' +
        '\n'.join(f'  {c}' for c in candidates) +
        "\nGive a path relative to the config file, an absolute path, a "
        "package config ('mmdet::...'), or '{{fileDirname}}/<file>'.")
