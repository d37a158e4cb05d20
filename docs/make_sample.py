"""Draws docs/sample.png, the demo's input: a small synthetic scene with an
arrow (so rotations are easy to read) and salt-and-pepper noise on its right
half (so the 3x3 mean filter's effect is visible). Run once; the PNG is
committed. Needs Pillow and numpy; the product itself never runs Python."""
import numpy as np
from PIL import Image, ImageDraw

W, H = 480, 320
y, x = np.mgrid[0:H, 0:W]
img = np.zeros((H, W, 3), np.float64)
img[..., 0] = 40 + 120 * y / H          # dusk sky, red rising downwards
img[..., 1] = 70 + 90 * (1 - y / H)
img[..., 2] = 200 - 60 * y / H
sun = (x - 370) ** 2 + (y - 90) ** 2 < 45 ** 2
img[sun] = [250, 210, 90]
ground = y > 230 + 12 * np.sin(x / 37.0)
img[ground] = np.stack([30 + 0 * x, 110 + 40 * np.sin(x / 11.0), 50 + 0 * x], -1)[ground]
pil = Image.fromarray(img.clip(0, 255).astype(np.uint8))
d = ImageDraw.Draw(pil)
d.polygon([(90, 60), (140, 130), (110, 130), (110, 210), (70, 210), (70, 130), (40, 130)], fill=(255, 255, 255))
d.text((30, 250), "nlimage: UP is this way", fill=(255, 255, 255))
a = np.array(pil)
rng = np.random.default_rng(7)
noise = rng.random((H, W)) < 0.08
noise[:, : W // 2] = False
a[noise] = rng.choice([0, 255], size=(noise.sum(), 1))
Image.fromarray(a).save("docs/sample.png", optimize=True)
