//! Detector parts: backbones, necks, heads, anchors, assigners, box coders, losses, post-processing.
