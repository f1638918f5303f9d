"""Build and install the ``dcn`` package (Deformable ConvNets detection core).

Usage::

    pip install -e lib                        # editable install, compiles the extensions
    python lib/setup.py build_ext --inplace   # compile the Cython extensions in place
"""
import os

from setuptools import Extension, find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def _numpy_include():
    try:
        import numpy
    except ImportError as exc:  # pragma: no cover - build-time guard
        raise RuntimeError('numpy must be installed before building dcn (pip install numpy==1.23.5)') from exc
    return numpy.get_include()


def _extensions():
    try:
        from Cython.Build import cythonize
    except ImportError as exc:  # pragma: no cover - build-time guard
        raise RuntimeError('Cython must be installed before building dcn (pip install Cython)') from exc
    inc = [_numpy_include()]
    macros = [('NPY_NO_DEPRECATED_API', 'NPY_1_7_API_VERSION')]
    exts = [
        Extension('dcn.bbox.cython_bbox', [os.path.join('dcn', 'bbox', 'cython_bbox.pyx')],
                  include_dirs=inc, define_macros=macros, extra_compile_args=['-O3']),
        Extension('dcn.nms.cpu_nms', [os.path.join('dcn', 'nms', 'cpu_nms.pyx')],
                  include_dirs=inc, define_macros=macros, extra_compile_args=['-O3']),
    ]
    return cythonize(exts, compiler_directives={'language_level': '3'}, quiet=True)


# setuptools resolves source paths relative to the current directory; make the
# build work from any directory (``python lib/setup.py build_ext --inplace``).
os.chdir(HERE)

setup(
    name='dcn',
    version='1.0.0',
    description='Deformable Convolutional Networks (R-FCN / Faster R-CNN) detection core for MXNet',
    packages=find_packages(include=['dcn', 'dcn.*']),
    package_data={'dcn': ['ops/*.so', 'bbox/*.pyx', 'nms/*.pyx']},
    ext_modules=_extensions(),
    python_requires='>=3.8',
    zip_safe=False,
)
