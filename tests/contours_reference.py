#!/usr/bin/env python3
"""tests/contours_reference.py - scikit-image's contours of a picture, for tests/contours_test.cpp.

    python3 tests/contours_reference.py IMAGE LEVEL [LEVEL...] [--fully-connected low|high]
                                        [--positive-orientation low|high]
    python3 tests/contours_reference.py --data-dir    # where skimage keeps its sample pictures

The picture is made grayscale exactly as examples/contours/image_io.hpp does it (8-bit samples
/ 255, 16-bit / 65535, colour as 0.2125 R + 0.7154 G + 0.0721 B evaluated left to right, alpha
ignored), and that float64 array goes to skimage.measure.find_contours directly. Output, one
block per level, every number as repr() so that it parses back to the same double:

    level <level> contours <count>
    contour <points>
    <row> <col>
    ...
"""
import argparse
import os
import sys

import numpy as np
import skimage
import skimage.io
import skimage.measure


def gray(image):
    if image.dtype == np.uint8:
        x = image.astype(np.float64) / 255.0
    elif image.dtype == np.uint16:
        x = image.astype(np.float64) / 65535.0
    else:
        raise SystemExit(f"contours_reference.py: unexpected sample type {image.dtype}")
    if x.ndim == 2:
        return x
    if x.shape[2] < 3:  # gray + alpha
        return np.ascontiguousarray(x[..., 0])
    return 0.2125 * x[..., 0] + 0.7154 * x[..., 1] + 0.0721 * x[..., 2]


def main():
    if sys.argv[1:] == ["--data-dir"]:
        print(os.path.join(os.path.dirname(skimage.__file__), "data"))
        return
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("image")
    p.add_argument("levels", nargs="+", type=float)
    p.add_argument("--fully-connected", choices=("low", "high"), default="low")
    p.add_argument("--positive-orientation", choices=("low", "high"), default="low")
    a = p.parse_args()

    g = gray(skimage.io.imread(a.image))
    out = []
    for level in a.levels:
        cs = skimage.measure.find_contours(g, level, fully_connected=a.fully_connected,
                                           positive_orientation=a.positive_orientation)
        out.append(f"level {level!r} contours {len(cs)}")
        for c in cs:
            out.append(f"contour {len(c)}")
            out.extend(f"{float(r)!r} {float(col)!r}" for r, col in c)
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
