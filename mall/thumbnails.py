"""Thumbnails of item images: a small JPEG made with Pillow when an item is saved with a new
image, stored beside the images under a name derived from the image's (so it needs no column),
shown in the console's catalogue list and answered as `thumbnail_url` by the member API.

An image Pillow cannot read leaves the item without a thumbnail (the list falls back to the
image itself); the upload itself was already checked by the ImageField.
"""

import io
import logging
from pathlib import PurePosixPath

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from PIL import Image, ImageOps, UnidentifiedImageError

THUMBNAIL_SIZE = (160, 160)
THUMBNAIL_DIR = "thumbs"

logger = logging.getLogger(__name__)


def thumbnail_name(image_name: str) -> str:
    """mall/items/cup_ab12.png -> mall/items/thumbs/cup_ab12.jpg"""
    path = PurePosixPath(image_name)
    return str(path.parent / THUMBNAIL_DIR / f"{path.stem}.jpg")


def thumbnail_bytes(source) -> bytes:
    """The image scaled to fit THUMBNAIL_SIZE (aspect kept, turned as its EXIF says), as JPEG."""
    with Image.open(source) as image:
        picture = ImageOps.exif_transpose(image).convert("RGB")
    picture.thumbnail(THUMBNAIL_SIZE)
    out = io.BytesIO()
    picture.save(out, format="JPEG", quality=85, optimize=True)
    return out.getvalue()


def thumbnail_make(image) -> str | None:
    """Write the thumbnail of `image` (an item's ImageField file); its storage name, or None
    when there is no image or Pillow cannot read it."""
    if not image:
        return None
    name = thumbnail_name(image.name)
    try:
        with image.storage.open(image.name, "rb") as source:
            content = thumbnail_bytes(source)
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as exc:
        logger.warning("No thumbnail for %s: %s", image.name, exc)
        return None
    if image.storage.exists(name):
        image.storage.delete(name)
    return image.storage.save(name, ContentFile(content))


def thumbnail_url(image) -> str | None:
    """The URL of the image's thumbnail, None when it has none."""
    if not image:
        return None
    storage = getattr(image, "storage", default_storage)
    name = thumbnail_name(image.name)
    return storage.url(name) if storage.exists(name) else None
