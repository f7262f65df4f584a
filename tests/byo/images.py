"""Small generated image data sets (numpy + Pillow, nothing downloaded): 16x16 grayscale PNGs of
three classes a CNN tells apart in a few rounds (a horizontal bar, a vertical bar, a bright centre
square), with seeded noise."""

from pathlib import Path

import numpy as np
from PIL import Image

SIZE = 16
CLASSES = 3
SHAPE = (1, SIZE, SIZE)


def pattern(label: int, rng: np.random.Generator) -> np.ndarray:
    pixels = rng.uniform(0, 60, (SIZE, SIZE))
    offset = int(rng.integers(3, SIZE - 5))
    if label == 0:
        pixels[offset:offset + 3, :] += 180
    elif label == 1:
        pixels[:, offset:offset + 3] += 180
    else:
        pixels[5:11, 5:11] += 180
    return np.clip(pixels, 0, 255).astype(np.uint8)


def class_folders(root: Path, per_class: int, seed: int, suffix: str = ".png") -> Path:
    """``root/<class number>/<i>.png``: ``per_class`` images of each class."""
    rng = np.random.default_rng(seed)
    for label in range(CLASSES):
        folder = root / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(pattern(label, rng)).save(folder / f"{i}{suffix}")
    return root


def hospital_folders(root: Path, hospitals: int, per_class: int) -> Path:
    """``root/hospital-N/...``, each hospital's own images (seeded per hospital)."""
    for n in range(1, hospitals + 1):
        class_folders(root / f"hospital-{n}", per_class, seed=n)
    return root
