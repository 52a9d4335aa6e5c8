"""The PyTorch peer of `mmrun bench train`: training steps of torchvision's RetinaNet with a
ResNet-18 FPN backbone on fixed synthetic images and boxes, on the CPU.

The model matches pipelines/bench/retinanet_r18_fpn.recipe: resnet18 (stem and layer1 frozen,
FrozenBatchNorm2d everywhere, as torchvision builds it for fine-tuning), FPN on C3–C5 with
P6/P7 from C5 (mmdetection's `add_extra_convs = on_input`), 256-channel head with 4 convs,
9 anchors per location, sigmoid focal loss + L1, SGD (lr 0.01, momentum 0.9, wd 1e-4).
The transform's resize is a no-op at min_size = max_size = the input side.

Prints one JSON line: {"s_per_iter": [...per timed iteration...], "threads": N, "torch": version}.
Exit status 3 (with a reason on stderr) when torch or torchvision is missing.
"""

import argparse
import json
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--classes", type=int, default=80)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--boxes", type=int, default=3)
    a = ap.parse_args()
    try:
        import torch
        import torchvision
        from torchvision.models import resnet18
        from torchvision.models.detection import RetinaNet
        from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
        from torchvision.ops.feature_pyramid_network import LastLevelP6P7
        from torchvision.ops.misc import FrozenBatchNorm2d
    except ImportError as e:
        print(f"torch/torchvision not importable: {e}", file=sys.stderr)
        sys.exit(3)

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    body = resnet18(weights=None, norm_layer=FrozenBatchNorm2d)
    backbone = _resnet_fpn_extractor(
        body, 3, returned_layers=[2, 3, 4], extra_blocks=LastLevelP6P7(512, 256)
    )
    model = RetinaNet(
        backbone,
        num_classes=a.classes,
        min_size=a.size,
        max_size=a.size,
    )
    model.train()
    opt = torch.optim.SGD(
        [p for p in model.parameters() if p.requires_grad],
        lr=0.01,
        momentum=0.9,
        weight_decay=1e-4,
    )
    g = torch.Generator().manual_seed(0)
    images = [torch.rand(3, a.size, a.size, generator=g) for _ in range(a.batch)]
    targets = []
    for _ in range(a.batch):
        xy = torch.rand(a.boxes, 2, generator=g) * (a.size * 0.6)
        wh = 16 + torch.rand(a.boxes, 2, generator=g) * (a.size * 0.35)
        boxes = torch.cat([xy, (xy + wh).clamp(max=a.size - 1)], dim=1)
        labels = torch.randint(0, a.classes, (a.boxes,), generator=g)
        targets.append({"boxes": boxes, "labels": labels})

    times = []
    for i in range(a.warmup + a.iters):
        t = time.perf_counter()
        losses = model(images, targets)
        loss = sum(losses.values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i >= a.warmup:
            times.append(time.perf_counter() - t)
    print(
        json.dumps(
            {
                "s_per_iter": times,
                "threads": torch.get_num_threads(),
                "torch": torch.__version__,
                "torchvision": torchvision.__version__,
                "loss": float(loss.detach()),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
