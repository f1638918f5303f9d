"""deeplab/demo.py: colour-coded class maps at the image size, the deformable res5
sampling-point pictures, and clear errors."""
import os

import numpy as np
import pytest

from dcn.tools.demo import DemoError
from dcn.tools.seg_demo import colourise, seg_palette, segment_main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MINI = os.path.join(ROOT, 'experiments', 'deeplab', 'cfgs', 'shapes_mini_deeplab.yaml')


def test_colourise_uses_the_palette_in_bgr():
    pal = [0, 0, 0, 255, 0, 0, 0, 128, 255] + [0] * (768 - 9)
    out = colourise(np.array([[0, 1], [2, 1]]), pal)
    assert out.shape == (2, 2, 3)
    np.testing.assert_array_equal(out[0, 1], [0, 0, 255])     # red in B, G, R
    np.testing.assert_array_equal(out[1, 0], [255, 128, 0])


def _checkpoint(tmp_path, symbol):
    """An untrained checkpoint of ``symbol`` (initialised as training starts)."""
    from dcn.checkpoint import save_checkpoint
    from dcn.config import update_config
    from dcn.tools.main import load_family_config
    from dcn.train import get_symbol_instance
    cfg = load_family_config('deeplab', MINI)
    cfg = update_config(cfg, {'symbol': symbol})
    inst = get_symbol_instance('deeplab', cfg)
    arg, aux = inst.init_weight(cfg, {}, {})
    prefix = str(tmp_path / symbol)
    save_checkpoint(prefix, 0, inst.get_symbol(cfg, is_train=False), arg, aux)
    cfg_path = tmp_path / (symbol + '.yaml')
    cfg_path.write_text('_BASE_: %s\nsymbol: %s\n' % (MINI, symbol))
    return str(cfg_path), prefix, cfg


@pytest.mark.parametrize('symbol', ['resnet_v1_18_deeplab', 'resnet_v1_18_deeplab_dcn'])
def test_demo_writes_palette_maps_at_image_size(tmp_path, symbol):
    from PIL import Image
    cfg_path, prefix, cfg = _checkpoint(tmp_path, symbol)
    image = os.path.join(ROOT, 'demo', 'shapes_1.jpg')
    out = str(tmp_path / 'out')
    argv = ['--cfg', cfg_path, '--params', prefix, '--epoch', '0', '--images', image,
            '--output', out]
    dcn = symbol.endswith('_dcn')
    written = segment_main(argv + (['--offsets'] if dcn else []))
    files = written[image]
    assert [os.path.basename(f) for f in files[:2]] == ['shapes_1_seg.png',
                                                          'shapes_1_overlay.png']
    with Image.open(image) as im:
        size = im.size
    with Image.open(files[0]) as seg:
        assert seg.mode == 'P' and seg.size == size
        assert seg.getpalette()[:18] == seg_palette(cfg)[:18]
        assert int(np.array(seg).max()) < cfg.dataset.NUM_CLASSES
    if dcn:     # three units, each with its sampling-point picture
        assert [os.path.basename(f) for f in files[2:]] == [
            'shapes_1_unit0.png', 'shapes_1_unit1.png', 'shapes_1_unit2.png']
    else:
        assert len(files) == 2


def test_demo_offsets_need_a_deformable_network(tmp_path):
    from dcn.tools.seg_demo import _segment
    cfg_path, prefix, _ = _checkpoint(tmp_path, 'resnet_v1_18_deeplab')
    with pytest.raises(DemoError, match='no deformable convolutions'):
        _segment(['--cfg', cfg_path, '--params', prefix, '--epoch', '0', '--images',
                  os.path.join(ROOT, 'demo', 'shapes_1.jpg'), '--output',
                  str(tmp_path / 'o'), '--offsets'])


def test_demo_missing_model_names_the_file(tmp_path):
    from dcn.tools.seg_demo import _segment
    with pytest.raises(DemoError, match='nothing-0003.params'):
        _segment(['--cfg', MINI, '--params', str(tmp_path / 'nothing'), '--epoch', '3'])
