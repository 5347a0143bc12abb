"""Heads that a model's tensor-mode forward skips, run for the taps on them.

The distiller runs the frozen teacher (always) and the student (in the
build-time probe) in tensor mode, ``model(inputs, mode='tensor')``. For an
OpenMMLab task model that forward is ``extract_feat`` followed by the main
head only: mmseg's ``EncoderDecoder`` runs ``decode_head`` and not its
``auxiliary_head``. A tap with ``run_head='auxiliary_head'`` asks the
distiller to run that head too::

    taps=dict(t_aux=dict(path='teacher.auxiliary_head.conv_seg',
                         run_head='auxiliary_head'))

While the distiller runs the model in tensor mode, each call of the model's
``extract_feat`` also runs the named heads on its output (each head of an
``nn.ModuleList``, e.g. several mmseg auxiliary heads, in order) before the
model's own head. The heads therefore run inside the model's forward, under
the same ``torch.no_grad``, precision and autocast rules as the rest of the
teacher, and the teacher's early stop still ends its forward once every tap
is recorded (before the main head, when no tap needs it). The model is not
changed: ``extract_feat`` is shadowed on the instance for the forward only.
"""
import difflib
from contextlib import contextmanager
from typing import Iterable, Iterator, Sequence, Tuple

from torch import nn

from .feature_tap import FeatureTap


def heads_to_run(model: nn.Module, model_name: str,
                 taps: Iterable[FeatureTap]) -> Tuple[str, ...]:
    """The heads named by the taps' ``run_head``, in order, without repeats.

    Raises:
        ValueError: If the model has no ``extract_feat`` method or no module
            at a head's path.
    """
    heads = []
    for tap in taps:
        head = tap.run_head
        if head is None or head in heads:
            continue
        if not callable(getattr(model, 'extract_feat', None)):
            raise ValueError(
                f"tap '{tap.name}': run_head={head!r} runs the head on the "
                f"output of the {model_name}'s extract_feat(inputs), but the "
                f'{model_name} ({type(model).__name__}) has no extract_feat '
                'method. Remove run_head and tap a module of its tensor-mode '
                'forward.')
        try:
            module = model.get_submodule(head)
        except AttributeError:
            names = [n for n, _ in model.named_modules() if n]
            close = difflib.get_close_matches(head, names, n=5, cutoff=0.5)
            hint = (f' Did you mean: {", ".join(close)}?'
                    if close else f' Its top-level modules are: '
                    f'{", ".join(n for n, _ in model.named_children())}.')
            raise ValueError(
                f"tap '{tap.name}': run_head={head!r}, but the {model_name} "
                f'({type(model).__name__}) has no module {head!r} (e.g. an '
                f'mmseg model built with auxiliary_head=None).{hint}'
            ) from None
        if isinstance(module, nn.ModuleList) and not len(module):
            raise ValueError(
                f"tap '{tap.name}': run_head={head!r} names an empty "
                f'ModuleList of the {model_name}')
        heads.append(head)
    return tuple(heads)


def _run(head: nn.Module, feats) -> None:
    """Run ``head`` (each of its heads, for a ModuleList) on ``feats``."""
    for module in head if isinstance(head, nn.ModuleList) else (head, ):
        module(feats)


@contextmanager
def extract_feat_runs_heads(model: nn.Module,
                            heads: Sequence[str]) -> Iterator[None]:
    """Within the context, ``model.extract_feat`` also runs ``heads`` on its
    output before returning it (nothing changes when ``heads`` is empty)."""
    if not heads:
        yield
        return
    own = vars(model).get('extract_feat')  # an instance attribute, if any
    extract_feat = model.extract_feat

    def extract_feat_then_heads(*args, **kwargs):
        feats = extract_feat(*args, **kwargs)
        for head in heads:
            _run(model.get_submodule(head), feats)
        return feats

    object.__setattr__(model, 'extract_feat', extract_feat_then_heads)
    try:
        yield
    finally:
        if own is None:
            object.__delattr__(model, 'extract_feat')
        else:
            object.__setattr__(model, 'extract_feat', own)
