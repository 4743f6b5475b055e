"""Chest X-ray images (PNG/JPEG, DICOM, NIfTI) as MONAI tensors, in display orientation.

One reader, :class:`ChestXrayReader`, serves every format through MONAI's ``LoadImaged``
(:class:`LoadChestXrayd`), so that all datasets look alike to the networks:

- **Display orientation.** Arrays are (rows, columns) as a viewer shows the file. (MONAI's own
  PIL and pydicom readers transpose to (columns, rows) by default; mixing them with other tools is
  how masks end up misaligned.) A NIfTI file's first axis is x (columns), as ITK, MONAI's writers
  and medical viewers treat it; its affine is not applied. JPEG/PNG EXIF orientation is applied.
- **Bone bright.** DICOM pixel data goes through the modality LUT (rescale slope/intercept) and the
  VOI LUT or window, and MONOCHROME1 is inverted (MONAI's ``PydicomReader`` applies only the
  rescale), so that a DICOM whose pixel data is array A loads like a PNG saved from A.
- **Grey.** RGB/RGBA/palette images are converted to one grey channel; 16-bit PNGs keep their depth.
- **Loud failures.** A missing, unreadable, truncated or unsupported file raises
  :class:`~reclf_monai.data.errors.DataError` naming the file, never a silently wrong image.

:func:`chest_xray_transforms` builds the standard pipeline: load, intensities stretched to
[0, 1] per image, aspect-preserving resize of the longest side, centred zero padding to a square.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import nibabel
import numpy as np
import pydicom
import torch
from monai.config import KeysCollection
from monai.data import ImageReader
from monai.transforms import (
    AsDiscreted,
    Compose,
    EnsureTyped,
    LoadImaged,
    MapTransform,
    Resized,
    ScaleIntensityd,
    SpatialPadd,
)
from monai.transforms.utils import rescale_array
from monai.utils import ensure_tuple
from PIL import Image, ImageOps
from pydicom.errors import InvalidDicomError

try:
    from pydicom.pixels import apply_modality_lut, apply_voi_lut
except ImportError:  # pydicom 2.x, which MONAI Label 0.8.5's environment pins (pydicom-seg needs <3)
    from pydicom.pixel_data_handlers.util import apply_modality_lut, apply_voi_lut

from .errors import DataError

PIL_SUFFIXES = (".png", ".jpg", ".jpeg")
DICOM_SUFFIXES = (".dcm", ".dicom")
NIFTI_SUFFIXES = (".nii", ".nii.gz")
SUPPORTED_SUFFIXES = PIL_SUFFIXES + DICOM_SUFFIXES + NIFTI_SUFFIXES

# PIL modes whose pixel values are already grey intensities (bilevel, 8-bit, 16/32-bit, float).
_GREY_PIL_MODES = {"1", "L", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"}


def read_image_2d(path: str | os.PathLike) -> np.ndarray:
    """Read a chest X-ray as a float32 (rows, columns) array in [0, 1], display orientation, bone bright.

    Intensities are stretched per image (minimum -> 0, maximum -> 1), exactly as
    :func:`chest_xray_transforms` does, so a file converted with this function trains the same.
    """
    return rescale_array(read_display_intensities(path), minv=0.0, maxv=1.0, dtype=np.float32)


def read_display_intensities(path: str | os.PathLike) -> np.ndarray:
    """Read a 2-D image as float32 (rows, columns) in display orientation, intensities unscaled.

    DICOM values are after the modality and VOI LUTs (MONOCHROME1 mirrored within the image's
    range); masks read through here keep their stored label values.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file not found" if not path.exists() else "not a regular file")
    name = path.name.lower()
    if name.endswith(PIL_SUFFIXES):
        array = _read_pil(path)
    elif name.endswith(DICOM_SUFFIXES):
        array = _read_dicom(path)
    elif name.endswith(NIFTI_SUFFIXES):
        array = _read_nifti(path)
    else:
        raise DataError(path, f"unsupported image type; expected one of {', '.join(SUPPORTED_SUFFIXES)}")
    if array.size == 0:
        raise DataError(path, "image has no pixels")
    if not np.isfinite(array).all():
        raise DataError(path, "image contains NaN or infinite values")
    return array


def _read_pil(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as image:
            image.load()  # decode now: a file cut short fails here, not later
            image = ImageOps.exif_transpose(image)
            if image.mode not in _GREY_PIL_MODES:
                image = image.convert("L")
            return np.asarray(image, dtype=np.float32)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise DataError(path, f"unreadable or corrupt image ({error})") from error


def _read_dicom(path: Path) -> np.ndarray:
    try:
        dataset = pydicom.dcmread(path)
    except (InvalidDicomError, OSError, ValueError, EOFError) as error:
        raise DataError(path, f"not a readable DICOM file ({error})") from error
    if not any(keyword in dataset for keyword in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        raise DataError(path, "DICOM has no pixel data")
    photometric = str(dataset.get("PhotometricInterpretation", ""))
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise DataError(path, f"DICOM is not greyscale (PhotometricInterpretation {photometric or 'missing'})")
    if int(dataset.get("NumberOfFrames", 1) or 1) != 1:
        raise DataError(path, f"DICOM has {dataset.NumberOfFrames} frames; expected one 2-D image")
    try:
        pixels = dataset.pixel_array
    except (AttributeError, ValueError, NotImplementedError, RuntimeError, OSError) as error:
        raise DataError(path, f"cannot decode DICOM pixel data ({error})") from error
    values = apply_voi_lut(apply_modality_lut(pixels, dataset), dataset).astype(np.float32)
    if photometric == "MONOCHROME1":  # low values are white: mirror so that bone is bright
        values = values.max() + values.min() - values
    return values


def _read_nifti(path: Path) -> np.ndarray:
    try:
        volume = nibabel.load(path).get_fdata(dtype=np.float32)
    except Exception as error:  # nibabel raises many types (ImageFileError, EOFError, zlib, mmap ...)
        raise DataError(path, f"unreadable or corrupt NIfTI ({type(error).__name__}: {error})") from error
    squeezed = volume.reshape([size for index, size in enumerate(volume.shape) if index < 2 or size != 1])
    if squeezed.ndim != 2:
        raise DataError(path, f"NIfTI has shape {volume.shape}; expected one 2-D image")
    return np.ascontiguousarray(squeezed.T)  # first axis is x (columns): transpose to (rows, columns)


class ChestXrayReader(ImageReader):
    """MONAI image reader for chest X-rays: one file -> (rows, columns) array, see the module doc."""

    def verify_suffix(self, filename: Sequence[str | os.PathLike] | str | os.PathLike) -> bool:
        return all(os.fspath(name).lower().endswith(SUPPORTED_SUFFIXES) for name in ensure_tuple(filename))

    def read(self, data: Sequence[str | os.PathLike] | str | os.PathLike, **kwargs) -> tuple[np.ndarray, str]:
        paths = ensure_tuple(data)
        if len(paths) != 1:
            raise DataError(paths[0] if paths else None, f"expected one image file per item, got {len(paths)}")
        path = os.fspath(paths[0])
        return read_display_intensities(path), path

    def get_data(self, img: tuple[np.ndarray, str]) -> tuple[np.ndarray, dict]:
        array, path = img
        meta = {
            "spatial_shape": np.asarray(array.shape),
            "original_channel_dim": "no_channel",
            "filename_or_obj": path,
        }
        return array, meta


class LoadChestXrayd(LoadImaged):
    """``LoadImaged`` that reads every file with :class:`ChestXrayReader` and nothing else.

    Given a reader at construction, ``LoadImage`` retries a file that reader rejects with its
    default readers, which transpose images and ignore the DICOM display rules, and reports a
    failure of all of them as "cannot find a suitable reader". Passing the reader at call time
    makes it the only one, so a bad file raises the reader's :class:`DataError`.
    """

    def __init__(self, keys: KeysCollection, allow_missing_keys: bool = False):
        super().__init__(
            keys, image_only=True, ensure_channel_first=True, dtype=np.float32, allow_missing_keys=allow_missing_keys
        )
        self.reader = ChestXrayReader()

    def __call__(self, data, reader: ImageReader | None = None):
        return super().__call__(data, reader=reader or self.reader)


class RequireSameShaped(MapTransform):
    """Raise a DataError when an image and its mask differ in size (they could not be aligned)."""

    def __init__(self, image_key: str, mask_key: str):
        super().__init__([image_key, mask_key])
        self.image_key, self.mask_key = image_key, mask_key

    def __call__(self, data):
        image, mask = data[self.image_key], data[self.mask_key]
        if tuple(image.shape[1:]) != tuple(mask.shape[1:]):
            raise DataError(
                _source_of(mask),
                f"mask size {tuple(mask.shape[1:])} differs from image size {tuple(image.shape[1:])}"
                f" ({_source_of(image)})",
            )
        return data


def _source_of(tensor) -> str | None:
    meta = getattr(tensor, "meta", {})
    return meta.get("filename_or_obj")


class DataErrorCompose(Compose):
    """A Compose whose steps' DataErrors reach the caller as themselves.

    MONAI wraps every exception raised inside a transform chain in ``RuntimeError("applying
    transform ...")``; callers that validate data (``except DataError``) and users reading the
    last line of a traceback should see the file and the problem instead.

    Nested Composes and lists (e.g. :func:`chest_xray_transforms` followed by a bundle's own steps,
    written as one JSON list) are flattened into one chain: a Compose counts as random to
    ``CacheDataset``, which would otherwise cache nothing after it.
    """

    def __init__(self, transforms=None, *args, **kwargs):
        super().__init__(_flat_steps(ensure_tuple(transforms or [])), *args, **kwargs)
        self.transforms = tuple(_flat_steps(self.transforms, self.map_items))

    def __call__(self, input_, start=0, end=None, threading=False, lazy: bool | None = None):
        try:
            return super().__call__(input_, start=start, end=end, threading=threading, lazy=lazy)
        except RuntimeError as error:
            cause = _data_error_in_chain(error)
            if cause is None:
                raise
            raise cause from None


def _flat_steps(steps, map_items=None) -> list:
    """`steps` with nested lists, and nested Composes (any subclass; MONAI's ``flatten`` inlines
    only ``Compose`` itself) of the same `map_items` if given, replaced by their own steps."""
    flat = []
    for step in steps:
        if isinstance(step, (list, tuple)):
            flat += _flat_steps(step, map_items)
        elif isinstance(step, Compose) and map_items is not None and step.map_items == map_items:
            flat += _flat_steps(step.transforms, map_items)
        else:
            flat.append(step)
    return flat


def _data_error_in_chain(error: BaseException | None) -> DataError | None:
    while error is not None:
        if isinstance(error, DataError):
            return error
        error = error.__cause__
    return None


def chest_xray_transforms(image_key: str = "image", label_key: str | None = None, image_size: int = 224, load: bool = True) -> Compose:
    """Load an image (and optional mask under `label_key`) as float32 tensors of shape (1, S, S).
    With `load` False the item holds the image itself, (1, H, W) in display orientation (what the
    loader gives), and the same steps follow.

    Image: intensities stretched to [0, 1] per image, resized (area averaging) so that its longest
    side is `image_size`, then padded with zeros (black) on both ends of the short side.
    Mask: binarised (stored value >= 0.5 is foreground; store masks losslessly, e.g. PNG), resized
    with nearest-exact interpolation and padded identically, so it stays aligned with the image.
    The spatial steps are MONAI invertible transforms, so ``Invertd`` (or ``inverse``) maps outputs
    back to the file's (rows, columns). Tensors stay in display orientation: MONAI writers assume
    (columns, rows), so give ``SaveImage`` with ``PILWriter``
    ``set_options(write_kwargs={"reverse_indexing": False})``.
    """
    keys: KeysCollection = [image_key] if label_key is None else [image_key, label_key]
    steps = [LoadChestXrayd(keys)] if load else []
    steps.append(ScaleIntensityd(image_key, minv=0.0, maxv=1.0))
    if label_key is not None:
        steps += [RequireSameShaped(image_key, label_key), AsDiscreted(label_key, threshold=0.5)]
    steps += [
        Resized(keys, spatial_size=image_size, size_mode="longest", mode=["area", "nearest-exact"][: len(keys)]),
        SpatialPadd(keys, spatial_size=(image_size, image_size)),
        EnsureTyped(keys, dtype=torch.float32),
    ]
    return DataErrorCompose(steps)
