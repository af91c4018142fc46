"""Write adaptc/data/mnist1d.npz: the MNIST-1D data set (Sam Greydanus, 2020;
github.com/greydanus/mnist1d, Apache-2.0), generated offline by the `mnist1d` package with its
default arguments -- 5,000 one-dimensional signals of 40 samples, 10 classes, split 4,000 training
/ 1,000 test, seed 42 (the published data set's settings).

The signals are stored as float16 (the generator centres them to mean 0 and scales them to
standard deviation 1; float16 keeps about three significant digits, far below the set's noise, and
halves the file); the labels as uint8. `adaptc.data.mnist1d()` reads them back as float32 (N, 1, 40)
and int64. Needs the `mnist1d` package (this script only; it calls the generator, never the
download):

    pip install mnist1d
    python examples/mnist1d/make_data.py
"""
from pathlib import Path

import numpy as np
from mnist1d.data import get_dataset_args, make_dataset

OUT = Path(__file__).resolve().parents[2] / "adaptc" / "data" / "mnist1d.npz"
SEED = 42


def main():
    args = get_dataset_args()
    args.seed = SEED
    d = make_dataset(args)
    x_train, x_test = (d[k].astype(np.float16) for k in ("x", "x_test"))
    y_train, y_test = (d[k].astype(np.uint8) for k in ("y", "y_test"))
    np.savez_compressed(OUT, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    print(f"{OUT}: {len(x_train)} training and {len(x_test)} test signals of {x_train.shape[1]} samples")


if __name__ == "__main__":
    main()
