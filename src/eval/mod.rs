//! Evaluation: COCO bbox metric (bit-compatible with pycocotools), proposal recall, VOC mAP.
