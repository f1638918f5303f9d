"""The evaluator interface (as detectron2's ``DatasetEvaluator``): ``reset()``, then
``process(index, prediction)`` for every image, then ``evaluate()`` -> dict of metrics.

:class:`DetectionEvaluator` holds ``all_boxes[class][image]`` ((k, 5) float32: x1, y1, x2,
y2, score) and evaluates it with the data set's own rule (``imdb.evaluate_detections``:
VOC AP / mAP, COCO AP). A segmentation task adds its own evaluator (e.g. a confusion
matrix and mIoU) behind the same interface.
"""
import numpy as np

__all__ = ['DatasetEvaluator', 'DetectionEvaluator']


class DatasetEvaluator(object):
    """Accumulates the predictions of a test set and evaluates them."""

    def reset(self):
        raise NotImplementedError

    def process(self, index, prediction):
        """Record the prediction of image ``index``."""
        raise NotImplementedError

    def evaluate(self):
        """Dict of metric name -> value (and whatever the data set's rule adds)."""
        raise NotImplementedError


class DetectionEvaluator(DatasetEvaluator):
    """Detections per class and image, evaluated by ``imdb.evaluate_detections``."""

    def __init__(self, imdb):
        self.imdb = imdb
        self.reset()

    def reset(self):
        self.all_boxes = [[np.zeros((0, 5), dtype=np.float32)
                           for _ in range(self.imdb.num_images)]
                          for _ in range(self.imdb.num_classes)]

    def process(self, index, prediction):
        """``prediction``: list over classes of (k, 5) arrays (index 0, the background,
        ignored)."""
        if not 0 <= index < self.imdb.num_images:
            raise ValueError('test loader yields image index %d but %s has %d images'
                             % (index, self.imdb.name, self.imdb.num_images))
        for j in range(1, self.imdb.num_classes):
            self.all_boxes[j][index] = prediction[j]

    def evaluate(self):
        return self.imdb.evaluate_detections(self.all_boxes)
