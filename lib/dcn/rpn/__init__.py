"""Region proposal network helpers: reference anchors and anchor target assignment."""
from .assign_anchor import assign_anchor, assign_pyramid_anchor
from .generate_anchor import generate_anchors, generate_shifted_anchors

__all__ = ["generate_anchors", "generate_shifted_anchors", "assign_anchor", "assign_pyramid_anchor"]
