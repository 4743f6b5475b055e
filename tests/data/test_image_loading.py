import pickle

import nibabel
import numpy as np
import pytest
import torch
from monai.data import Dataset
from PIL import Image
from pydicom.dataset import Dataset as DicomDataset
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from reclf_monai.data.errors import DataError
from reclf_monai.data.image_loading import chest_xray_transforms, read_display_intensities, read_image_2d
from sample_files import real_chest_dicom

torch.set_num_threads(1)


def write_dicom(path, array, photometric="MONOCHROME2", rescale=None, window=None, pixels=True, bits_stored=12):
    """A minimal single-frame uint16 DICOM; `rescale` = (slope, intercept), `window` = (center, width)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = DicomDataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality = "CR"
    ds.Rows, ds.Columns = array.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, bits_stored, bits_stored - 1, 0
    if rescale is not None:
        ds.RescaleSlope, ds.RescaleIntercept = rescale
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    if pixels:
        ds.PixelData = np.ascontiguousarray(array, dtype=np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def write_png(path, array):
    Image.fromarray(array).save(path)
    return path


def write_nifti(path, display_array):
    """NIfTI with the first axis as x (columns), as ITK and MONAI's writers store 2-D images."""
    nibabel.save(nibabel.Nifti1Image(np.ascontiguousarray(display_array.T), np.eye(4)), path)
    return path


def stretched(array):
    array = array.astype(np.float64)
    return (array - array.min()) / (array.max() - array.min())


def ramp(rows, cols, scale=1, dtype=np.uint8):
    """A pattern that changes along both axes, so a transpose or flip cannot go unnoticed."""
    return ((np.arange(rows)[:, None] * 7 + np.arange(cols)[None, :] * 3) % 200 * scale).astype(dtype)


# --- formats --------------------------------------------------------------------------------


def test_png_8bit_keeps_display_orientation_and_stretches_to_unit_range(tmp_path):
    array = ramp(30, 50)
    result = read_image_2d(write_png(tmp_path / "a.png", array))
    assert result.dtype == np.float32 and result.shape == (30, 50)
    np.testing.assert_allclose(result, stretched(array), atol=1e-6)


def test_png_16bit_keeps_its_depth(tmp_path):
    array = ramp(20, 24, scale=300, dtype=np.uint16)  # values up to 59,700: not representable in 8 bits
    path = write_png(tmp_path / "b.png", array)
    assert Image.open(path).mode.startswith("I;16")
    np.testing.assert_array_equal(read_display_intensities(path), array.astype(np.float32))
    np.testing.assert_allclose(read_image_2d(path), stretched(array), atol=1e-6)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "P"])
def test_colour_png_becomes_grey(tmp_path, mode):
    rgb = np.stack([ramp(16, 20), ramp(16, 20)[::-1], np.full((16, 20), 90, np.uint8)], axis=-1)
    image = Image.fromarray(rgb).convert(mode)
    image.save(tmp_path / "c.png")
    expected = np.asarray(image.convert("L"), dtype=np.float32)
    np.testing.assert_array_equal(read_display_intensities(tmp_path / "c.png"), expected)


def test_jpeg_loads_close_to_its_source(tmp_path):
    array = np.kron(ramp(12, 16), np.ones((4, 4), np.uint8))  # smooth blocks survive JPEG well
    Image.fromarray(array).save(tmp_path / "a.jpg", quality=95)
    result = read_display_intensities(tmp_path / "a.jpg")
    assert result.shape == (48, 64)
    assert np.abs(result - array).mean() < 3


def test_exif_orientation_is_applied(tmp_path):
    array = ramp(6, 10)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    Image.fromarray(array).save(tmp_path / "e.png", exif=exif)
    np.testing.assert_array_equal(read_display_intensities(tmp_path / "e.png"), np.rot90(array, k=-1))


@pytest.mark.parametrize("trailing", [(), (1,)])
def test_nifti_first_axis_is_columns(tmp_path, trailing):
    array = ramp(18, 26).astype(np.float32)
    data = np.ascontiguousarray(array.T).reshape(array.T.shape + trailing)
    nibabel.save(nibabel.Nifti1Image(data, np.eye(4)), tmp_path / "a.nii.gz")
    np.testing.assert_array_equal(read_display_intensities(tmp_path / "a.nii.gz"), array)


def dicom_display_expectation(array, slope, intercept, center, width):
    """DICOM PS3.3 C.11.2.1.2 linear window after rescale, as a fraction of the output range."""
    values = array.astype(np.float64) * slope + intercept
    return np.clip((values - (center - 0.5)) / (width - 1) + 0.5, 0.0, 1.0)


def test_dicom_applies_rescale_and_window(tmp_path):
    array = ramp(24, 32, scale=20, dtype=np.uint16)  # 0..3980
    slope, intercept, center, width = 2.0, -100.0, 3000.0, 2000.0  # window cuts both ends of the range
    path = write_dicom(tmp_path / "w.dcm", array, rescale=(slope, intercept), window=(center, width))
    expected = dicom_display_expectation(array, slope, intercept, center, width)
    assert expected.min() == 0 and expected.max() == 1
    np.testing.assert_allclose(read_image_2d(path), expected, atol=1e-5)


def test_dicom_monochrome1_is_inverted(tmp_path):
    array = ramp(24, 32, scale=20, dtype=np.uint16)
    window = (3000.0, 2000.0)
    mono2 = read_image_2d(write_dicom(tmp_path / "m2.dcm", array, rescale=(2.0, -100.0), window=window))
    mono1 = read_image_2d(
        write_dicom(tmp_path / "m1.dcm", array, "MONOCHROME1", rescale=(2.0, -100.0), window=window)
    )
    np.testing.assert_allclose(mono1, 1.0 - mono2, atol=1e-5)
    assert not np.allclose(mono1, mono2)


def test_dicom_loads_like_a_png_saved_from_its_pixel_data(tmp_path):
    array = ramp(40, 56, scale=20, dtype=np.uint16)
    dicom = write_dicom(tmp_path / "a.dcm", array)
    png = write_png(tmp_path / "a.png", array)
    transforms = chest_xray_transforms(image_size=32)
    from_dicom, from_png = transforms({"image": dicom})["image"], transforms({"image": png})["image"]
    assert from_dicom.shape == (1, 32, 32)
    torch.testing.assert_close(from_dicom.as_tensor(), from_png.as_tensor(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(read_image_2d(dicom), read_image_2d(png), atol=1e-6)


def test_real_chest_dicom_bone_is_brighter_than_lungs():
    sample = chest_xray_transforms(image_size=224)({"image": str(real_chest_dicom())})["image"]
    assert sample.dtype == torch.float32 and sample.shape == (1, 224, 224)
    assert sample.min() == 0.0 and 0.9 < sample.max() <= 1.0  # area averaging rounds off the extremes
    image = sample[0]
    # 1955 rows x 1841 columns: rows fill 224, columns 211, so 13 padding columns split 6 + 7.
    assert image[:, :6].abs().max() == 0 and image[:, -7:].abs().max() == 0
    assert image[:, 6].abs().max() > 0.5 and image[:, -8].abs().max() > 0.5
    mid_rows = slice(60, 160)  # lung fields
    spine_and_mediastinum = image[mid_rows, 100:124].mean()
    right_lung, left_lung = image[mid_rows, 40:70].mean(), image[mid_rows, 150:180].mean()
    assert spine_and_mediastinum > right_lung + 0.15 and spine_and_mediastinum > left_lung + 0.15


# --- pipeline geometry ------------------------------------------------------------------------


@pytest.mark.parametrize("rows, cols", [(40, 80), (80, 40)])
def test_resize_preserves_aspect_and_pads_short_side(tmp_path, rows, cols):
    array = np.zeros((rows, cols), np.uint8)
    array[: rows // 2, : cols // 2] = 255  # bright top-left quadrant
    image = chest_xray_transforms(image_size=32)({"image": write_png(tmp_path / "a.png", array)})["image"][0]
    content = image[8:24, :] if rows < cols else image[:, 8:24]  # the long side fills 32, the short 16
    padding = torch.cat([image[:8, :], image[24:, :]]) if rows < cols else torch.cat([image[:, :8], image[:, 24:]])
    assert padding.abs().max() == 0
    expected = torch.zeros(content.shape)
    expected[: content.shape[0] // 2, : content.shape[1] // 2] = 1
    torch.testing.assert_close(content.as_tensor(), expected)


def rectangle_mask(rows=36, cols=48):
    """A rectangle left of centre in the upper half: a flip or transpose moves it.

    At a 3x reduction its rows fall on block edges; its first column does not (2 of 3 pixels of a
    block), where area averaging, nearest-exact (block centre) and plain nearest (block corner) differ.
    """
    mask = np.zeros((rows, cols), bool)
    mask[6:18, 4:29] = True
    return mask


@pytest.mark.parametrize("image_format", ["png", "dicom", "dicom-monochrome1", "nifti"])
@pytest.mark.parametrize("mask_mode", ["L", "1"])
def test_display_orientation_mask_aligns_with_image(tmp_path, image_format, mask_mode):
    mask = rectangle_mask()
    grey = np.where(mask, 3000, 200).astype(np.uint16)
    if image_format == "png":
        image_path = write_png(tmp_path / "i.png", (grey // 16).astype(np.uint8))
    elif image_format == "dicom":
        image_path = write_dicom(tmp_path / "i.dcm", grey)
    elif image_format == "dicom-monochrome1":  # stored dark-is-bright: displays as the others
        image_path = write_dicom(tmp_path / "i.dcm", 4095 - grey, photometric="MONOCHROME1")
    else:
        image_path = write_nifti(tmp_path / "i.nii", grey.astype(np.float32))
    Image.fromarray(mask.astype(np.uint8) * 255).convert(mask_mode).save(tmp_path / "m.png")
    item = chest_xray_transforms(label_key="label", image_size=16)({"image": image_path, "label": tmp_path / "m.png"})
    image, label = item["image"], item["label"]
    assert image.shape == label.shape == (1, 16, 16)
    assert set(label.unique().tolist()) == {0.0, 1.0}
    expected = np.zeros((16, 16), np.float32)
    expected[2:14, :] = mask[1::3, 1::3]  # 36 x 48 -> 12 x 16 (block centres), padded 2 rows above and below
    np.testing.assert_array_equal(label[0].numpy(), expected)
    np.testing.assert_array_equal((image[0] > 0.5).float().numpy(), expected)


def test_mask_values_are_binarised_without_scaling(tmp_path):
    image = write_png(tmp_path / "i.png", ramp(16, 16))
    mask = np.zeros((16, 16), np.uint16)
    mask[:8] = 1  # a {0, 1} mask stored as 16-bit
    write_png(tmp_path / "m.png", mask)
    label = chest_xray_transforms(label_key="label", image_size=16)({"image": image, "label": tmp_path / "m.png"})
    np.testing.assert_array_equal(label["label"][0].numpy(), mask.astype(np.float32))


def test_mask_of_another_size_is_rejected(tmp_path):
    image = write_png(tmp_path / "i.png", ramp(16, 20))
    mask = write_png(tmp_path / "m.png", np.zeros((20, 16), np.uint8))
    with pytest.raises(DataError, match=r"m\.png: mask size \(20, 16\) differs from image size \(16, 20\)"):
        chest_xray_transforms(label_key="label", image_size=16)({"image": image, "label": mask})


def test_pipeline_is_picklable_and_invertible(tmp_path):
    gradient = (np.arange(30)[:, None] * 2 + np.arange(50)[None, :] * 3).astype(np.uint8)  # smooth: survives
    path = write_png(tmp_path / "a.png", gradient)
    transforms = pickle.loads(pickle.dumps(chest_xray_transforms(image_size=32)))
    item = transforms({"image": path})
    restored = transforms.inverse(item)["image"]
    assert restored.shape == (1, 30, 50)
    np.testing.assert_allclose(restored[0].numpy(), read_image_2d(path), atol=0.05)


# --- bad input -------------------------------------------------------------------------------


def _truncated(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _bad_missing(tmp_path):
    return tmp_path / "missing.png", "file not found"


def _bad_junk_png(tmp_path):
    (tmp_path / "junk.png").write_bytes(b"this is not a PNG file at all")
    return tmp_path / "junk.png", "unreadable or corrupt image"


def _bad_truncated_png(tmp_path):
    return _truncated(write_png(tmp_path / "cut.png", ramp(64, 64))), "truncated"


def _bad_truncated_jpeg(tmp_path):
    Image.fromarray(ramp(64, 64)).save(tmp_path / "cut.jpg")
    return _truncated(tmp_path / "cut.jpg"), "truncated"


def _bad_dicom_without_pixels(tmp_path):
    return write_dicom(tmp_path / "nopix.dcm", ramp(8, 8), pixels=False), "DICOM has no pixel data"


def _bad_not_dicom(tmp_path):
    (tmp_path / "fake.dcm").write_bytes(b"\0" * 300)
    return tmp_path / "fake.dcm", "not a readable DICOM file"


def _bad_truncated_dicom(tmp_path):
    path = write_dicom(tmp_path / "cut.dcm", ramp(64, 64, dtype=np.uint16))
    path.write_bytes(path.read_bytes()[:-4000])
    return path, "cannot decode DICOM pixel data"


def _bad_colour_dicom(tmp_path):
    return write_dicom(tmp_path / "rgb.dcm", ramp(8, 8), photometric="RGB"), "DICOM is not greyscale"


def _bad_unsupported_extension(tmp_path):
    Image.fromarray(ramp(8, 8)).save(tmp_path / "a.bmp")  # readable by other MONAI readers: must not be
    return tmp_path / "a.bmp", "unsupported image type"


def _bad_nifti_volume(tmp_path):
    nibabel.save(nibabel.Nifti1Image(np.zeros((4, 5, 3), np.float32), np.eye(4)), tmp_path / "v.nii")
    return tmp_path / "v.nii", r"shape \(4, 5, 3\); expected one 2-D image"


def _bad_corrupt_nifti(tmp_path):
    write_nifti(tmp_path / "c.nii.gz", ramp(16, 16).astype(np.float32))
    return _truncated(tmp_path / "c.nii.gz"), "unreadable or corrupt NIfTI"


BAD_INPUTS = [
    _bad_missing, _bad_junk_png, _bad_truncated_png, _bad_truncated_jpeg, _bad_dicom_without_pixels,
    _bad_not_dicom, _bad_truncated_dicom, _bad_colour_dicom, _bad_unsupported_extension, _bad_nifti_volume,
    _bad_corrupt_nifti,
]


@pytest.mark.parametrize("make_bad_input", BAD_INPUTS, ids=lambda f: f.__name__[5:])
def test_bad_input_raises_data_error_naming_file(tmp_path, make_bad_input):
    path, problem = make_bad_input(tmp_path)
    with pytest.raises(DataError, match=problem) as from_reader:
        read_image_2d(path)
    assert from_reader.value.path == str(path) and str(path) in str(from_reader.value)
    with pytest.raises(DataError, match=problem) as from_pipeline:
        chest_xray_transforms()({"image": str(path)})
    assert from_pipeline.value.path == str(path)


def test_bad_mask_in_a_monai_dataset_raises_data_error(tmp_path):
    dataset = Dataset(
        [{"image": write_png(tmp_path / "i.png", ramp(8, 8)), "label": tmp_path / "missing_mask.png"}],
        transform=chest_xray_transforms(label_key="label", image_size=8),
    )
    with pytest.raises(DataError, match=r"missing_mask\.png: file not found"):
        dataset[0]
