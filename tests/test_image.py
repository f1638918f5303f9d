import cv2
import numpy as np
import pytest
from easydict import EasyDict

from dcn.config import default_config
from dcn.image import (get_image, get_train_image, imread, resize, tensor_vstack, transform,
                       transform_inverse)


def test_resize_short_side_and_cap():
    im = np.zeros((200, 300, 3), np.uint8)
    out, s = resize(im, 100, 1000)
    assert out.shape == (100, 150, 3) and s == 0.5
    out, s = resize(im, 400, 450)          # 600 long side would exceed 450 -> capped
    assert s == 1.5 and out.shape == (300, 450, 3)
    out, s = resize(im, 100, 1000, stride=32)
    assert out.shape == (128, 160, 3) and not out[100:].any()
    with pytest.raises(ValueError, match='target_size'):
        resize(im, 0, 100)


def test_transform_channel_order_and_means():
    im = np.zeros((2, 3, 3), np.uint8)
    im[..., 0], im[..., 1], im[..., 2] = 10, 20, 30       # B, G, R
    t = transform(im, [1, 2, 3])                           # means B, G, R
    assert t.shape == (1, 3, 2, 3) and t.dtype == np.float32
    np.testing.assert_array_equal(t[0, :, 0, 0], [27, 18, 9])   # R-3, G-2, B-1
    rng = np.random.RandomState(0)
    im = rng.randint(0, 256, size=(7, 5, 3)).astype(np.uint8)
    np.testing.assert_array_equal(transform_inverse(transform(im, [103.06, 115.9, 123.15]),
                                                    [103.06, 115.9, 123.15]), im)


def test_tensor_vstack_pads():
    a = np.ones((1, 3, 2, 4), np.float32)
    b = 2 * np.ones((1, 3, 5, 3), np.float32)
    v = tensor_vstack([a, b], pad=-1)
    assert v.shape == (2, 3, 5, 4)
    assert (v[0, :, 2:] == -1).all() and (v[0, :, :2] == 1).all()
    assert (v[1, :, :, 3] == -1).all() and (v[1, :, :, :3] == 2).all()
    with pytest.raises(ValueError):
        tensor_vstack([])


def test_imread_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='missing.jpg'):
        imread(str(tmp_path / 'missing.jpg'))
    bad = tmp_path / 'bad.jpg'
    bad.write_bytes(b'not an image')
    with pytest.raises(IOError, match='bad.jpg'):
        imread(str(bad))


def _entry(tmp_path):
    im = np.zeros((40, 80, 3), np.uint8)
    im[:, :10] = (255, 0, 0)            # blue stripe on the left
    p = str(tmp_path / 'a.png')
    cv2.imwrite(p, im)
    return {'image': p, 'height': 40, 'width': 80, 'flipped': False,
            'boxes': np.array([[0, 0, 9, 39]], np.float32), 'gt_classes': np.array([3], np.int32)}


def test_get_image_and_flip(tmp_path):
    cfg = default_config()
    cfg.SCALES = [20, 1000]
    cfg.network.PIXEL_MEANS = np.zeros(3, np.float32)
    rec = _entry(tmp_path)
    ims, recs = get_image([rec], cfg)
    assert ims[0].shape == (1, 3, 20, 40)
    np.testing.assert_allclose(recs[0]['im_info'], [20, 40, 0.5])
    np.testing.assert_allclose(recs[0]['boxes'], [[0, 0, 4.5, 19.5]])
    # channel 2 of the tensor is B: blue stripe on the left
    assert ims[0][0, 2, :, :3].min() > 200 and ims[0][0, 2, :, -3:].max() < 50
    flipped = dict(rec, flipped=True, boxes=np.array([[70, 0, 79, 39]], np.float32))
    t, im_info, gt = get_train_image(flipped, cfg, 0)
    assert t[0, 2, :, -3:].min() > 200                    # stripe now on the right
    np.testing.assert_allclose(gt, [[35, 0, 39.5, 19.5, 3]])
    with pytest.raises(IndexError):
        get_train_image(rec, cfg, 3)


def test_get_image_stale_size(tmp_path):
    cfg = default_config()
    rec = dict(_entry(tmp_path), width=81)
    with pytest.raises(ValueError, match='a.png'):
        get_image([rec], cfg)
