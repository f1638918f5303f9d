"""Registries of the parts a network is assembled from (as detectron2's ``Registry``).

A part is registered under a name with ``@BACKBONES.register('name')`` and found with
``BACKBONES.get('name')``; a family adds its parts by registering them in its own modules,
without editing the core. The four registries:

- :data:`BACKBONES`: ``build(data, cfg, is_train, sym_ops, **options) -> (features,
  output_spec)`` where ``features`` maps a feature name to its symbol and ``output_spec``
  maps it to a :class:`ShapeSpec` (stride, channels); single-level and pyramid backbones
  share this interface.
- :data:`PROPOSAL_GENERATORS`: region proposals from the backbone features.
- :data:`ROI_HEADS`: per-RoI classification and box regression.
- :data:`SEM_SEG_HEADS`: per-pixel classification (semantic segmentation).
"""
import collections

__all__ = ['Registry', 'ShapeSpec', 'BACKBONES', 'PROPOSAL_GENERATORS', 'ROI_HEADS',
           'SEM_SEG_HEADS']

#: what a feature map is: its stride (input pixels per feature pixel) and channels
ShapeSpec = collections.namedtuple('ShapeSpec', ['stride', 'channels'])


class Registry(object):
    """Name -> object, with an error naming the known names for an unknown one."""

    def __init__(self, name):
        self.name = name
        self._obj = {}

    def register(self, name=None, obj=None):
        """``register('x', obj)``, or as a decorator ``@register('x')`` / ``@register()``
        (the object's ``__name__``)."""
        def add(o, key):
            key = key or o.__name__
            if key in self._obj and self._obj[key] is not o:
                raise KeyError('%s registry: %r is registered already' % (self.name, key))
            self._obj[key] = o
            return o
        if obj is not None:
            return add(obj, name)
        return lambda o: add(o, name)

    def get(self, name):
        if name not in self._obj:
            raise KeyError('no %s named %r (registered: %s)'
                           % (self.name, name, ', '.join(sorted(self._obj)) or 'none'))
        return self._obj[name]

    def __contains__(self, name):
        return name in self._obj

    def names(self):
        return sorted(self._obj)


BACKBONES = Registry('backbone')
PROPOSAL_GENERATORS = Registry('proposal generator')
ROI_HEADS = Registry('RoI head')
SEM_SEG_HEADS = Registry('semantic-segmentation head')
