"""Write adaptc/data/digits.npz: scikit-learn's handwritten digits (8x8 images, 16 grey levels,
1,797 samples; the UCI "Optical Recognition of Handwritten Digits" test set), split once into a
training and a test part (stratified, fixed seed) so that every user of the file -- the training
script, the tests, `adaptc demo` -- sees the same split. Needs scikit-learn (this script only).

    python examples/digits/make_data.py
"""
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

OUT = Path(__file__).resolve().parents[2] / "adaptc" / "data" / "digits.npz"


def main():
    d = load_digits()
    x = d.images.astype(np.uint8)                    # 0..16
    y = d.target.astype(np.uint8)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, stratify=y, random_state=0)
    np.savez_compressed(OUT, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    print(f"{OUT}: {len(x_train)} training and {len(x_test)} test images")


if __name__ == "__main__":
    main()
