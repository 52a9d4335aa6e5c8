//! Loss forward/backward against PyTorch/torchvision reference values.
