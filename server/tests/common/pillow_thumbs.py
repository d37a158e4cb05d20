"""Reference thumbnails by Pillow, for server/tests/photos.rs: for each line
"PATH WIDTH HEIGHT" on stdin, the photo decoded whole, turned upright by its
EXIF orientation, converted to sRGB from its ICC profile by ImageCms
(perceptual), and resized to WIDTH x HEIGHT with Lanczos, written to stdout
as raw RGB bytes. Run by the test with .ci/.venv's Python
(./setup.sh test installs Pillow there)."""

import io
import sys

from PIL import Image, ImageCms, ImageOps

SRGB = ImageCms.createProfile("sRGB")

if sys.argv[1:2] == ["cmyk"]:
    # `cmyk PHOTO OUT`: PHOTO as a CMYK JPEG at OUT (Pillow writes the
    # Adobe marker and inverted values, as Photoshop does), and on stdout
    # Pillow's RGB reading of it.
    im = Image.open(sys.argv[2]).convert("RGB")
    im.thumbnail((640, 640))
    im.convert("CMYK").save(sys.argv[3], quality=95)
    back = Image.open(sys.argv[3])
    assert back.mode == "CMYK", back.mode
    sys.stdout.buffer.write(back.convert("RGB").tobytes())
    sys.exit(0)

for line in sys.stdin:
    path, w, h = line.rsplit(maxsplit=2)
    im = Image.open(path)
    im.draft(None, None)  # the full decode, never a DCT-scaled one
    icc = im.info.get("icc_profile")
    im = ImageOps.exif_transpose(im).convert("RGB")
    if icc:
        src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        im = ImageCms.profileToProfile(
            im, src, SRGB, renderingIntent=ImageCms.Intent.PERCEPTUAL, outputMode="RGB"
        )
    im = im.resize((int(w), int(h)), Image.Resampling.LANCZOS)
    sys.stdout.buffer.write(im.tobytes())
    sys.stdout.buffer.flush()
