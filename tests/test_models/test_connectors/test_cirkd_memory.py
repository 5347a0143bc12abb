"""CIRKD's memory: the enqueue against the authors' loops
(winycg/CIRKD ``losses/cirkd_memory.py``, ``_dequeue_and_enqueue``), queue
semantics, state, size, bad input and 2-process DDP."""
import copy
import os.path as osp
import pickle
import re

import pytest
import torch
import torch.nn.functional as F

from mmkd.models.connectors import CIRKDMemory

ROOT = osp.dirname(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
BUFFERS = ('pixel_queue', 'pixel_queue_ptr', 'region_queue',
           'region_queue_ptr')


def make_memory(sampling='authors', **kw):
    torch.manual_seed(0)
    args = dict(
        in_channels=3,
        out_channels=4,
        num_classes=3,
        pixel_memory_size=10,
        region_memory_size=3,
        pixel_contrast_size=2,
        region_contrast_size=2,
        pixel_update_freq=4,
        pixel_sampling=sampling)
    args.update(kw)
    return CIRKDMemory(**args).double()


def enqueue_reference(state, keys_T, labels, keys, sampling, freq, ignore=255):
    """The authors' ``_dequeue_and_enqueue``: images in order, classes in
    ascending order; their ``randperm(n)[:K]`` is the K smallest keys among
    the candidates (positions 0..n-1 of the image for 'authors', the
    class's pixels for 'class')."""
    pq, pp, rq, rp = [state[k].clone() for k in BUFFERS]
    B, D = keys_T.shape[:2]
    for b in range(B):
        feat = keys_T[b].reshape(D, -1)
        lab = labels[b].reshape(-1)
        for lb in sorted(set(lab.tolist()) - {ignore}):
            idxs = (lab == lb).nonzero()[:, 0]
            region = feat[:, idxs].mean(dim=1)
            rq[lb, rp[lb]] = F.normalize(region, dim=0)
            rp[lb] = (rp[lb] + 1) % rq.shape[1]
            n = len(idxs)
            cand = torch.arange(n) if sampling == 'authors' else idxs
            K = min(n, freq)
            chosen = cand[keys[b, cand].argsort()[:K]]
            pix = F.normalize(feat[:, chosen].T, dim=1)
            ptr = int(pp[lb])
            if ptr + K >= pq.shape[1]:
                pq[lb, -K:] = pix
                pp[lb] = 0
            else:
                pq[lb, ptr:ptr + K] = pix
                pp[lb] = ptr + K
    return dict(zip(BUFFERS, (pq, pp, rq, rp)))


def batch(seed, B=2, h=3, w=4, K=3, ignore_frac=0.25):
    g = torch.Generator().manual_seed(seed)
    t = F.normalize(
        torch.randn(B, 4, h, w, generator=g, dtype=torch.float64), dim=1)
    labels = torch.randint(0, K, (B, h, w), generator=g)
    labels[torch.rand(B, h, w, generator=g) < ignore_frac] = 255
    keys = torch.rand(B, h * w, generator=g)
    return t, labels, keys


@pytest.mark.parametrize('sampling', ['authors', 'class'])
def test_enqueue_matches_authors_loops_over_steps(sampling):
    """Six steps: the pointers wrap (10 slots, up to 4 pixels per image and
    class; 3 region slots, 2 images per step)."""
    memory = make_memory(sampling)
    state = {k: getattr(memory, k).clone() for k in BUFFERS}
    wrapped = False
    for step in range(6):
        t, labels, keys = batch(step)
        memory.enqueue(t, labels, keys)
        new = enqueue_reference(state, t, labels, keys, sampling, 4)
        wrapped |= bool((new['pixel_queue_ptr']
                         < state['pixel_queue_ptr']).any())
        state = new
        for k in BUFFERS:
            got = getattr(memory, k)
            assert got.dtype == state[k].dtype
            assert (got - state[k]).abs().max() <= 1e-12, (step, k)
    assert wrapped


def test_pixel_wrap_around_and_region_pointer():
    memory = make_memory('class', num_classes=2)
    memory.pixel_queue_ptr[1] = 8  # 8 + 4 >= 10: the last 4 slots, ptr 0
    memory.region_queue_ptr[1] = 2  # next: slot 2, then back to 0
    before = memory.pixel_queue.clone()
    t = F.normalize(torch.randn(1, 4, 2, 3, dtype=torch.float64), dim=1)
    labels = torch.ones(1, 2, 3, dtype=torch.long)  # 6 pixels of class 1
    memory.enqueue(t, labels, torch.arange(6.)[None])  # keys: pixels 0..3
    assert memory.pixel_queue_ptr.tolist() == [0, 0]
    expected = t.reshape(4, 6).T[:4]
    assert torch.allclose(memory.pixel_queue[1, 6:], expected, atol=1e-15)
    assert torch.equal(memory.pixel_queue[1, :6], before[1, :6])
    assert torch.equal(memory.pixel_queue[0], before[0])  # class 0 absent
    assert torch.allclose(
        memory.region_queue[1, 2],
        F.normalize(t.reshape(4, 6).mean(1), dim=0),
        atol=1e-15)
    assert memory.region_queue_ptr.tolist() == [0, 0]
    # next image: no wrap, written at [0, 4), pointer 4
    memory.enqueue(t, labels, torch.arange(6.)[None])
    assert memory.pixel_queue_ptr.tolist() == [0, 4]
    assert torch.allclose(memory.pixel_queue[1, :4], expected, atol=1e-15)
    assert memory.region_queue_ptr.tolist() == [0, 1]


def test_ignored_pixels_absent_classes_and_ignored_images():
    """Class sampling: an ignored pixel never enters a queue; an image of
    ignored pixels only and a class absent from the batch change nothing.
    (The authors' pixel choice indexes the first n_c raster positions,
    whatever their label: see the docstring.)"""
    memory = make_memory('class')
    before = copy.deepcopy(memory)
    t = F.normalize(torch.randn(2, 4, 3, 4, dtype=torch.float64), dim=1)
    marker = F.normalize(torch.ones(4, dtype=torch.float64), dim=0)
    labels = torch.zeros(2, 3, 4, dtype=torch.long)
    labels[0, :, :2] = 255
    labels[0, :, 2:] = 1
    labels[1] = 255  # only ignored pixels
    t[0, :, :, :2] = marker[:, None, None]
    t[1] = marker[:, None, None]
    memory.enqueue(t, labels)
    for q in (memory.pixel_queue, memory.region_queue):
        assert not torch.isclose(q @ marker, torch.ones(
            (), dtype=torch.float64)).any()
    # the authors' choice: positions 0..5 of image 0 for class 1's 6
    # pixels, which include ignored ones
    authors = make_memory('authors')
    authors.enqueue(t, labels)
    assert torch.isclose(authors.pixel_queue[1] @ marker,
                         torch.ones((), dtype=torch.float64)).any()
    # class 1 got 4 pixels and 1 region, from image 0; classes 0, 2 nothing
    assert memory.pixel_queue_ptr.tolist() == [0, 4, 0]
    assert memory.region_queue_ptr.tolist() == [0, 1, 0]
    for c in (0, 2):
        assert torch.equal(memory.pixel_queue[c], before.pixel_queue[c])
        assert torch.equal(memory.region_queue[c], before.region_queue[c])
    # a batch of ignored pixels only: nothing at all
    state = copy.deepcopy(memory.state_dict())
    memory.enqueue(t, torch.full((2, 3, 4), 255))
    for k, v in memory.state_dict().items():
        assert torch.equal(v, state[k]), k


def test_buffers_in_state_dict_and_restored():
    memory = make_memory()
    t, labels, keys = batch(0)
    memory.enqueue(t, labels, keys)
    sd = memory.state_dict()
    assert set(BUFFERS) <= set(sd)
    fresh = make_memory()
    assert not torch.equal(fresh.pixel_queue_ptr, memory.pixel_queue_ptr)
    fresh.load_state_dict(sd)
    for k in BUFFERS:
        assert torch.equal(getattr(fresh, k), getattr(memory, k))


def test_bad_sizes_fail_at_build():
    with pytest.raises(
            ValueError,
            match='pixel_memory_size=100 is smaller '
            'than pixel_contrast_size=216'):
        make_memory(pixel_memory_size=100, pixel_contrast_size=216)
    with pytest.raises(ValueError, match='region_memory_size=3 is smaller'):
        make_memory(region_contrast_size=4)
    with pytest.raises(ValueError, match='pixel_update_freq'):
        make_memory(pixel_memory_size=3, pixel_update_freq=4)
    with pytest.raises(ValueError, match="'authors' or 'class'"):
        make_memory(sampling='random')
    memory = make_memory()
    with pytest.raises(ValueError, match='cannot match them'):
        memory(torch.randn(2, 3, 4, 4), out_sizes=(8, 8))


def test_queue_bytes_at_the_papers_sizes_match_benchmark_doc():
    """The queues at the authors' Cityscapes sizes (19 classes, 20000
    pixels and 2000 regions per class) with mmseg's DeepLabV3-R101
    embedding (512 channels) take the bytes docs/en/benchmark.md states."""
    with torch.device('meta'):
        memory = CIRKDMemory(128, 512, 19)
    nbytes = {
        k: v.numel() * v.element_size()
        for k, v in memory.named_buffers(recurse=False)
    }
    with open(osp.join(ROOT, 'docs', 'en', 'benchmark.md')) as f:
        doc = f.read()
    section = doc[doc.index('## CIRKD memory'):]
    stated = {
        key:
        int(
            re.search(rf'`{key}`[^|]*\| ([\d,]+) B',
                      section).group(1).replace(',', ''))
        for key in BUFFERS
    }
    assert stated == nbytes
    total = int(
        re.search(r'in all ([\d,]+) B', section).group(1).replace(',', ''))
    assert total == sum(nbytes.values())


def _ddp_worker(rank, tmp):
    import torch.distributed as dist
    dist.init_process_group(
        'gloo', init_method=f'file://{tmp}/pg', rank=rank, world_size=2)
    try:
        memory = make_memory()  # same initial queues (seed 0)
        torch.manual_seed(100 + rank)  # different generators per rank
        for step in range(3):
            t, labels, _ = batch(10 * step + rank)  # each rank its images
            memory.enqueue(t, labels)
        torch.save({k: getattr(memory, k)
                    for k in BUFFERS}, osp.join(tmp, f'rank{rank}.pth'))
    finally:
        dist.destroy_process_group()


def test_two_gloo_processes_hold_identical_queues(tmp_path):
    """Every process gathers the batch's teacher embeddings and labels of
    all processes and rank 0's random keys, so the queues are identical,
    and equal to one process enqueueing the concatenated batches with rank
    0's generator."""
    import torch.multiprocessing as mp
    mp.start_processes(
        _ddp_worker, args=(str(tmp_path), ), nprocs=2, start_method='fork')
    r0 = torch.load(tmp_path / 'rank0.pth', weights_only=True)
    r1 = torch.load(tmp_path / 'rank1.pth', weights_only=True)
    single = make_memory()
    torch.manual_seed(100)
    for step in range(3):
        parts = [batch(10 * step + r) for r in range(2)]
        single.enqueue(
            torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]))
    for k in BUFFERS:
        assert torch.equal(r0[k], r1[k]), k
        assert torch.equal(r0[k], getattr(single, k)), k
    assert (r0['pixel_queue_ptr'] > 0).any()


def test_undo_puts_back_every_write_and_the_log_is_not_state():
    """Two enqueues (the same class in both images, pointers wrapping):
    undo restores the queues and pointers; a copy of the module carries no
    log; after stop_undo_log nothing is recorded."""
    torch.manual_seed(0)
    memory = CIRKDMemory(4, 6, num_classes=2, pixel_memory_size=5,
                         region_memory_size=3, pixel_contrast_size=2,
                         region_contrast_size=2, pixel_update_freq=2)
    before = [b.clone() for b in memory.undo_log_buffers()]
    memory.start_undo_log()
    embed = F.normalize(torch.randn(2, 6, 2, 2), dim=1)
    labels = torch.tensor([[[0, 0], [1, 1]], [[0, 1], [1, 255]]])
    for _ in range(2):
        memory.enqueue(embed, labels)
    assert not torch.equal(memory.region_queue_ptr, before[3])
    assert copy.deepcopy(memory)._undo_log is None
    memory.undo()
    for old, now in zip(before, memory.undo_log_buffers()):
        assert torch.equal(old, now)
    memory.start_undo_log()
    memory.stop_undo_log()
    memory.enqueue(embed, labels)
    assert memory._undo_log is None


def test_a_recording_or_compiled_memory_pickles_without_its_log():
    """The undo log is a step's, not state: a pickled copy taken while
    recording has none; a compiled module still pickles (nn.Module's own
    state handling is kept)."""
    memory = CIRKDMemory(4, 6, num_classes=2, pixel_memory_size=5,
                         region_memory_size=3, pixel_contrast_size=2,
                         region_contrast_size=2, pixel_update_freq=2)
    memory.start_undo_log()
    assert memory._undo_log is not None
    copied = pickle.loads(pickle.dumps(memory))
    assert copied._undo_log is None and memory._undo_log is not None
    assert torch.equal(copied.pixel_queue, memory.pixel_queue)
    memory.compile()
    assert pickle.loads(pickle.dumps(memory))._undo_log is None
