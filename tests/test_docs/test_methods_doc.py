"""The method documentation is self-contained: no tracked file refers to
notes outside the repository, and every link to a section of
docs/en/methods.md names a heading that exists."""
import os
import os.path as osp
import re
import subprocess
import unicodedata

import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
METHODS_DOC = osp.join(ROOT, 'docs', 'en', 'methods.md')
# Spelled in pieces so that this file does not match itself.
FORBIDDEN = ('METHODS' + '.md', '..' + '/shared')
SKIP_DIRS = {
    '.git', '.venv', 'work_dirs', 'data', 'checkpoints', '__pycache__'
}


def _tracked_files():
    """Files under version control (or, outside a git checkout, every file
    of the source tree but the usual build/data directories)."""
    try:
        out = subprocess.run(['git', 'ls-files', '-z'],
                             cwd=ROOT,
                             check=True,
                             capture_output=True).stdout
        return [osp.join(ROOT, p) for p in out.decode().split('\0') if p]
    except (OSError, subprocess.CalledProcessError):
        files = []
        for dirpath, dirnames, filenames in os.walk(ROOT):
            dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS]
            files += [osp.join(dirpath, f) for f in filenames]
        return files


def _texts():
    for path in _tracked_files():
        if not osp.isfile(path) or osp.getsize(path) > 5_000_000:
            continue
        with open(path, 'rb') as f:
            data = f.read()
        if b'\0' in data:  # binary (weights, images)
            continue
        yield osp.relpath(path, ROOT), data.decode('utf-8', errors='replace')


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a markdown heading: lower case, markup and
    punctuation removed (hyphens and underscores kept), spaces to '-'."""
    text = re.sub(r'`([^`]*)`', r'\1', heading.strip())
    text = re.sub(r'\[([^\]]*)\]\([^)]*\)', r'\1', text)
    text = text.lower()
    kept = []
    for ch in text:
        cat = unicodedata.category(ch)
        if ch in '-_ ' or cat[0] in 'LN':
            kept.append(ch)
    return ''.join(kept).replace(' ', '-')


def heading_anchors(markdown: str) -> set:
    anchors, seen = set(), {}
    in_code = False
    for line in markdown.splitlines():
        if line.lstrip().startswith('```'):
            in_code = not in_code
            continue
        m = re.match(r'^(#{1,6})\s+(.*?)\s*#*\s*$', line)
        if in_code or not m:
            continue
        slug = github_anchor(m.group(2))
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        anchors.add(slug if n == 0 else f'{slug}-{n}')
    return anchors


def test_github_anchor_rules():
    assert github_anchor('FRSKD BiFPNc') == 'frskd-bifpnc'
    assert github_anchor('SKD paper vs code') == 'skd-paper-vs-code'
    assert github_anchor('`DKDLoss`: TCKD + NCKD') == 'dkdloss-tckd--nckd'
    assert heading_anchors('# A\n## A\n```\n# not a heading\n```\n') == {
        'a', 'a-1'
    }


def test_no_file_refers_to_notes_outside_the_repository():
    offenders = [
        f'{path}:{lineno}: {line.strip()}' for path, text in _texts()
        for lineno, line in enumerate(text.splitlines(), 1)
        if any(word in line for word in FORBIDDEN)
    ]
    assert not offenders, 'references to files outside the repository:\n' \
        + '\n'.join(offenders)


def test_every_methods_doc_anchor_exists():
    anchors = heading_anchors(open(METHODS_DOC, encoding='utf-8').read())
    links = []
    for path, text in _texts():
        for m in re.finditer(r'methods\.md#([A-Za-z0-9_\-]+)', text):
            links.append((path, m.group(1)))
        if osp.join(ROOT, path) == METHODS_DOC:  # links within the page
            for m in re.finditer(r'\]\(#([A-Za-z0-9_\-]+)\)', text):
                links.append((path, m.group(1)))
    assert len(links) > 20  # the docstrings do link to it
    broken = sorted({f'{p}: #{a}' for p, a in links if a not in anchors})
    assert not broken, 'links to missing sections of docs/en/methods.md:\n' \
        + '\n'.join(broken)


@pytest.mark.parametrize(
    'method',
    ['kd', 'fitnets', 'at', 'frskd', 'reviewkd', 'skd', 'dkd', 'sources'])
def test_every_method_has_a_section(method):
    assert method in heading_anchors(
        open(METHODS_DOC, encoding='utf-8').read())
