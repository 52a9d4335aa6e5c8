#!/usr/bin/env python3
"""The PyTorch peer of `scripts/gpu-check`: torchvision RetinaNet R-50-FPN training steps
(SGD lr 0.01 momentum 0.9 wd 1e-4, batch of 2 images at 800x1333 padded to 800x1344, five
random boxes per image, 80 classes), eager mode, fp32 — the model of
pipelines/retinanet_r50_fpn_1x_coco.recipe as torchvision trains it from a pretrained
backbone: stem and layer1 frozen, frozen batch norm (mmdetection's frozen_stages=1 and
norm_eval), P6 from C5 (add_extra_convs='on_input'). Weights are random (no download).
Prints `retinanet<TAB>torchvision eager<TAB>images/s<TAB>1.00` with --tsv, else a sentence.
Runs on the CPU too (small sizes) so it can be checked without a GPU."""
import argparse
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--height", type=int, default=800)
    ap.add_argument("--width", type=int, default=1333)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--tsv", action="store_true")
    # mmrun's runtime.tf32 covers convolutions and GEMMs alike; torch's default allows TF32 for
    # cuDNN only. Both flags are set so the two sides compute with the same numerics.
    ap.add_argument("--strict-f32", action="store_true")
    # bf16 autocast: the policy of mmrun's runtime.precision = bf16 (convolutions and matmuls
    # in bf16, norms and losses in f32, f32 master weights).
    ap.add_argument("--bf16", action="store_true")
    a = ap.parse_args()
    try:
        import torch
        import torchvision
        from torchvision.models import resnet50
        from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
        from torchvision.models.detection.retinanet import RetinaNet
        from torchvision.ops import misc as misc_nn_ops
        from torchvision.ops.feature_pyramid_network import LastLevelP6P7
    except ImportError as e:
        print(f"skipped: torch/torchvision not importable ({e})")
        return 0
    if a.device.startswith("cuda") and not torch.cuda.is_available():
        print("skipped: torch sees no CUDA device")
        return 0
    dev = torch.device(a.device)
    torch.manual_seed(0)
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = not a.strict_f32
    torch.backends.cuda.matmul.allow_tf32 = not a.strict_f32
    # retinanet_resnet50_fpn() without pretrained weights would train every layer with live
    # batch norm; build the pretrained-backbone configuration (what mmdetection trains) instead.
    trunk = resnet50(weights=None, norm_layer=misc_nn_ops.FrozenBatchNorm2d)
    backbone = _resnet_fpn_extractor(
        trunk, 3, returned_layers=[2, 3, 4], extra_blocks=LastLevelP6P7(2048, 256)
    )
    # The images are already 800x1333: min/max size keep torchvision from resizing them.
    model = RetinaNet(backbone, num_classes=80, min_size=a.height, max_size=a.width).to(dev).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    # mmdetection's linear warm-up (500 iterations from 0.001x): at lr 0.01 from the first
    # step, random weights diverged to a non-finite loss within 25 steps on an H200. The
    # schedule costs nothing measurable; the timing is what this script is for.
    warmup = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 0.001 + 0.999 * min(i, 500) / 500)
    images = [torch.rand(3, a.height, a.width, device=dev) for _ in range(a.batch)]
    targets = []
    for _ in range(a.batch):
        xy = torch.rand(5, 2, device=dev) * torch.tensor([a.width * 0.7, a.height * 0.7], device=dev)
        wh = 16 + torch.rand(5, 2, device=dev) * 200
        targets.append({"boxes": torch.cat([xy, xy + wh], 1), "labels": torch.randint(0, 80, (5,), device=dev)})

    def step():
        with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=a.bf16):
            losses = model(images, targets)
        loss = sum(losses.values())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        warmup.step()
        return loss

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(a.warmup):
        step()
    sync()
    t0 = time.perf_counter()
    for _ in range(a.iters):
        loss = step()
    sync()
    dt = time.perf_counter() - t0
    ips = a.batch * a.iters / dt
    if not torch.isfinite(loss):
        print("error: non-finite loss", file=sys.stderr)
        return 1
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    if a.tsv:
        math = "bf16 autocast" if a.bf16 else "strict f32" if a.strict_f32 else "TF32"
        print(f"retinanet\ttorchvision {torchvision.__version__} eager {math}, cudnn.benchmark ({name})\t{ips:.2f}\t1.00")
    else:
        print(f"torchvision RetinaNet R-50-FPN train step, batch {a.batch} x {a.height}x{a.width} on {name}: {ips:.2f} images/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
