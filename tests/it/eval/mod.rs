//! Integration tests of the `eval` area: live parity with pycocotools on generated cases,
//! hand-computed edge cases, VOC mAP and proposal recall by hand, and the `mmrun eval` CLI.

mod args;
mod cli;
mod coco_edges;
mod coco_parity;
mod confusion;
mod reference;
mod voc_recall;
