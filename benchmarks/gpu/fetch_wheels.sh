#!/usr/bin/env bash
# Run HERE (where the package registries are reachable), in the repository root, before
# benchmarks/gpu/run.sh goes to a lent GPU machine.  That machine reaches nothing outside itself:
# its image has Python 3.12 with a CUDA JAX, flax, optax, numpy, scipy and matplotlib, but not
# Prefect or Craftax, so those travel as wheels in .whl/ (ignored by git, carried by the device
# tool, 64 MiB at most).  The image's own numeric stack is kept: carrying another jaxlib would
# replace its CUDA build with a CPU one.
set -euo pipefail
cd "$(dirname "$0")/../.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
rm -rf .whl && mkdir -p .whl
python3 -m pip download -q --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform any -d .whl "prefect>=3.9,<3.10" "craftax>=1.4" 2>&1 \
  | grep -v "^WARNING: Location" || true
# What the image already holds in a build of its own (and pygame, which only Craftax's play script uses).
for name in jax jaxlib numpy scipy tensorstore matplotlib pillow fonttools kiwisolver contourpy flax optax \
            orbax_checkpoint ml_dtypes chex pygame; do
  rm -f .whl/"${name}"-[0-9]*.whl
done
size=$(du -sm .whl | cut -f1)
echo "$(ls .whl | wc -l) wheels, ${size} MiB in .whl/"
if [ "$size" -gt 60 ]; then echo "too big for one carry (64 MiB with the working tree)" >&2; exit 1; fi
