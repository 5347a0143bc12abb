import io
import pickle

import numpy as np
import pytest
import torch
from mmengine.logging import MessageHub
from mmengine.logging.history_buffer import HistoryBuffer

from mmkd.utils import allow_mmengine_checkpoint_globals


def test_mmengine_checkpoint_loads_with_weights_only(tmp_path):
    allow_mmengine_checkpoint_globals()
    hub = MessageHub.get_instance('test_ckpt_globals')
    hub.update_scalar('train/loss', 1.5)
    hub.update_scalar('train/loss', np.float64(0.5))
    ckpt = dict(
        state_dict={'w': torch.ones(2)},
        message_hub=hub.state_dict(),
        meta=dict(seed=np.int64(3), arr=np.arange(3, dtype=np.float32),
                  dtype=np.dtype('float64')))
    path = tmp_path / 'ckpt.pth'
    torch.save(ckpt, path)
    loaded = torch.load(path, weights_only=True)
    buffer = loaded['message_hub']['log_scalars']['train/loss']
    assert isinstance(buffer, HistoryBuffer)
    assert buffer.mean() == pytest.approx(1.0)
    assert loaded['meta']['seed'] == 3
    np.testing.assert_array_equal(loaded['meta']['arr'], [0, 1, 2])


class _Evil:
    """getattr on another allow-listed class (np.ndarray) must be refused."""

    def __reduce__(self):
        return getattr, (np.ndarray, 'tofile')


def test_getattr_stays_restricted(tmp_path):
    allow_mmengine_checkpoint_globals()
    path = tmp_path / 'evil.pth'
    torch.save({'x': _Evil()}, path)
    with pytest.raises((pickle.UnpicklingError, AttributeError),
                       match='refuses'):
        torch.load(path, weights_only=True)
    # and getattr on HistoryBuffer is limited to its statistics methods
    buf = io.BytesIO()

    class _Sneaky:

        def __reduce__(self):
            return getattr, (HistoryBuffer, '__init__')

    torch.save({'x': _Sneaky()}, buf)
    buf.seek(0)
    with pytest.raises((pickle.UnpicklingError, AttributeError),
                       match='refuses|getattr'):
        torch.load(buf, weights_only=True)
