//! Datasets (COCO, VOC, generated shapes), transforms, samplers, the loader.
