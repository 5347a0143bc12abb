#!/usr/bin/env bash
# Build .wheelhouse/: the wheels a CUDA machine without network needs to run
# mmkd's classification path (tools/gpu/setup_offline.sh installs them).
#
# Usage (on a machine WITH network; any Python >= 3.8 with pip, setuptools<81
# and wheel):
#   bash tools/gpu/build_wheelhouse.sh [DIR]        # default DIR: .wheelhouse
# WHEEL_PYTHON=3.11 targets CPython 3.11 instead (a dry run of
# tools/gpu/setup_offline.sh on this project's CPU machines).
#
# Target: CPython 3.12 (WHEEL_PYTHON), manylinux x86-64. It holds
#   - mmengine 0.10.7 and mmpretrain 1.2.0 (PyPI wheels);
#   - mmcv 2.1.0 built from its sdist WITHOUT its C++/CUDA ops
#     (MMCV_WITH_OPS=0: a pure-Python py3-none-any wheel, which mmcv's
#     setup.py names mmcv-lite; the module is mmcv 2.1.0). mmpretrain uses
#     mmcv's Python transforms only; mmdet and mmseg need the compiled ops,
#     whose CUDA build does not fit a short offline session, so the offline
#     GPU path is classification only;
#   - pytest and pytest-timeout (the CUDA tests);
#   - every dependency these declare (Requires-Dist, markers evaluated for
#     CPython 3.12 on Linux x86-64), recursively, except torch, torchvision,
#     numpy, opencv, matplotlib, rich and their own dependencies, which the
#     GPU image provides (torch is never shipped).
# MANIFEST.txt in DIR lists every wheel with its size and sha256.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DIR="${1:-$ROOT/.wheelhouse}"
if [ -z "${PYTHON:-}" ]; then
  if [ -x "$ROOT/.venv/bin/python" ]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi
WHEEL_PYTHON="${WHEEL_PYTHON:-3.12}"
log() { printf '[build_wheelhouse] %s\n' "$*" >&2; }

rm -rf "$DIR"
mkdir -p "$DIR"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# mmcv 2.1.0 without ops. --no-cache-dir: pip's wheel cache may hold an
# mmcv-2.1.0 wheel built WITH ops under the same name.
log "building mmcv 2.1.0 without its ops (MMCV_WITH_OPS=0)"
"$PYTHON" -m pip download -q --no-deps --no-binary :all: --no-build-isolation \
  --no-cache-dir -d "$work" "mmcv==2.1.0"
tar -xzf "$work"/mmcv-2.1.0.tar.gz -C "$work"
(cd "$work/mmcv-2.1.0" && MMCV_WITH_OPS=0 "$PYTHON" -m pip wheel -q --no-deps \
  --no-build-isolation --no-cache-dir -w "$DIR" . 2>"$work/mmcv_build.log") \
  || { tail -30 "$work/mmcv_build.log" >&2; exit 1; }

log "downloading mmengine, mmpretrain, pytest and their dependencies"
"$PYTHON" - "$DIR" "$WHEEL_PYTHON" <<'PY'
import email
import glob
import os
import subprocess
import sys
import zipfile

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

out, pyver = sys.argv[1], sys.argv[2]
cp = 'cp' + pyver.replace('.', '')
ROOTS = ['mmengine==0.10.7', 'mmpretrain==1.2.0', 'pytest',
         'pytest-timeout']
# On the GPU image (and so are their own dependencies): never shipped.
PROVIDED = {canonicalize_name(n) for n in '''
    torch torchvision numpy opencv-python opencv-python-headless
    opencv-contrib-python matplotlib rich pillow packaging pygments
    markdown-it-py mdurl pyparsing python-dateutil six contourpy cycler
    fonttools kiwisolver filelock typing-extensions sympy mpmath networkx
    jinja2 markupsafe fsspec setuptools triton'''.split()}
ENV = dict(python_version=pyver, python_full_version=pyver + '.0',
           implementation_name='cpython',
           platform_python_implementation='CPython', sys_platform='linux',
           platform_system='Linux', platform_machine='x86_64',
           os_name='posix', extra='')
PIP = [sys.executable, '-m', 'pip', 'download', '-q', '--no-deps',
       '--only-binary=:all:', '--python-version', pyver,
       '--implementation', 'cp', '--platform', 'manylinux_2_28_x86_64',
       '--platform', 'manylinux_2_17_x86_64', '--platform',
       'manylinux2014_x86_64', '--platform', 'any', '-d', out]


def metadata(wheel):
    with zipfile.ZipFile(wheel) as z:
        name = next(n for n in z.namelist()
                    if n.endswith('.dist-info/METADATA'))
        return email.message_from_bytes(z.read(name))


def dists():
    return {canonicalize_name(parse_wheel_filename(
        os.path.basename(w))[0]): w for w in glob.glob(f'{out}/*.whl')}


# mmpretrain imports mmcv at run time without declaring it (extra 'mim');
# mmcv built without ops is the distribution 'mmcv-lite' (module mmcv).
queue = ['mmcv-lite==2.1.0'] + ROOTS
seen = set()
while queue:
    req = Requirement(queue.pop(0))
    name = canonicalize_name(req.name)
    if name == 'mmcv':
        name = 'mmcv-lite'
    if name in seen or name in PROVIDED:
        continue
    seen.add(name)
    have = dists()
    if name not in have:
        subprocess.run(PIP + [str(req)], check=True)
        have = dists()
    for line in metadata(have[name]).get_all('Requires-Dist') or []:
        dep = Requirement(line)
        if dep.marker is None or dep.marker.evaluate(ENV):
            queue.append(str(dep).split(';')[0])

# Every wheel installs on this CPython, manylinux x86-64.
for name, wheel in sorted(dists().items()):
    tags = parse_wheel_filename(os.path.basename(wheel))[3]
    if not any((t.interpreter in ('py3', cp) and t.platform == 'any'
                and t.abi == 'none')
               or (t.interpreter == cp and t.abi in (cp, 'abi3')
                   and t.platform.startswith('manylinux')
                   and t.platform.endswith('x86_64'))
               or (t.interpreter.startswith('cp3') and t.abi == 'abi3'
                   and t.platform.startswith('manylinux')
                   and t.platform.endswith('x86_64'))
               for t in tags):
        sys.exit(f'{os.path.basename(wheel)}: not installable on CPython '
                 f'{pyver} manylinux x86-64')
PY

(cd "$DIR" && for w in *.whl; do
   printf '%s %s %s\n' "$(sha256sum "$w" | cut -c1-64)" "$(stat -c %s "$w")" "$w"
 done) > "$DIR/MANIFEST.txt"
case "$(ls "$DIR"/mmcv_lite-2.1.0-*.whl)" in
  *py3-none-any.whl) ;;
  *) log "mmcv-lite is not a pure-Python wheel (built with ops?)"; exit 1 ;;
esac
log "$(ls "$DIR"/*.whl | wc -l) wheels, $(du -sh "$DIR" | cut -f1) in $DIR:"
cat "$DIR/MANIFEST.txt" | awk '{printf "  %8d KB  %s\n", $2/1024, $3}' >&2
