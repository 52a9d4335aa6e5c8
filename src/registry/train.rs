//! Training components: optimizers, schedule warmups and policies, hooks, and the top-level
//! sections (`optimizer`, `schedule`, `hooks`, `run`, `runtime`).
//!
//! Over 600 lines on purpose: one table, one `Def` per component, read top to bottom; split
//! it would scatter the shared constants and the top-level sections that name them.

use super::{Category::*, Component, Def, INT, NAT, NONNEG, NUM, POS, Param, Ty, UNIT, p};

const POSF: Ty = Ty::Float {
    min: 0.0,
    max: f64::INFINITY,
};
const LEN: Ty = Ty::Or(&[Ty::Period, NAT]);
const NFLOAT: Ty = Ty::Nullable(&NUM);

const PARAMWISE: &[Param] = &[
    p(
        "bias_lr_mult",
        NONNEG,
        Def::Float(1.0),
        "learning-rate multiplier of biases",
    ),
    p(
        "bias_decay_mult",
        NONNEG,
        Def::Float(1.0),
        "weight-decay multiplier of biases",
    ),
    p(
        "norm_decay_mult",
        NONNEG,
        Def::Float(1.0),
        "weight-decay multiplier of norm layers",
    ),
    p(
        "dwconv_decay_mult",
        NONNEG,
        Def::Float(1.0),
        "weight-decay multiplier of depthwise convs",
    ),
    p(
        "custom_keys",
        Ty::Map(&Ty::Record(CUSTOM_KEY)),
        Def::Record,
        "multipliers for parameters whose name contains a key",
    ),
];

const CUSTOM_KEY: &[Param] = &[
    p(
        "lr_mult",
        NONNEG,
        Def::Float(1.0),
        "learning-rate multiplier",
    ),
    p(
        "decay_mult",
        NONNEG,
        Def::Float(1.0),
        "weight-decay multiplier",
    ),
];

const WARMUP: &[Param] = &[
    p(
        "duration",
        Ty::Period,
        Def::Required,
        "warmup length (`500 iters`)",
    ),
    p(
        "ratio",
        Ty::Nullable(&UNIT),
        Def::Null,
        "starting factor of the value (mmcv's warmup_ratio; null: 0.1 for lr, 0.9 for momentum)",
    ),
];

/// Keys every policy takes: whether it steps per epoch, and a phase length.
const BY: Param = p(
    "by_epoch",
    Ty::Nullable(&Ty::Bool),
    Def::Null,
    "update per epoch (default: the policy's mmcv default)",
);
const DUR: Param = p(
    "duration",
    Ty::Nullable(&Ty::Period),
    Def::Null,
    "length of this phase (default: the rest of the run)",
);
const MIN_LR: Param = p(
    "min_lr",
    NFLOAT,
    Def::Null,
    "final value (give this or min_lr_ratio)",
);
const MIN_LR_RATIO: Param = p(
    "min_lr_ratio",
    NFLOAT,
    Def::Null,
    "final value as a ratio of the base value",
);
const MIN_M: Param = p(
    "min_momentum",
    NFLOAT,
    Def::Null,
    "final momentum (momentum schedules)",
);
const MIN_M_RATIO: Param = p(
    "min_momentum_ratio",
    NFLOAT,
    Def::Null,
    "final momentum ratio (momentum schedules)",
);
const ANNEAL: Ty = Ty::Enum(&["cos", "linear"]);

pub static COMPONENTS: &[Component] = &[
    Component {
        name: "sgd",
        category: Optimizer,
        doc: "SGD with momentum (torch.optim.SGD semantics)",
        params: &[
            p(
                "lr",
                POSF,
                Def::Required,
                "base learning rate (for the whole batch across devices)",
            ),
            p("momentum", UNIT, Def::Float(0.0), "momentum factor"),
            p("dampening", UNIT, Def::Float(0.0), "momentum dampening"),
            p("weight_decay", NONNEG, Def::Float(0.0), "L2 penalty"),
            p("nesterov", Ty::Bool, Def::Bool(false), "Nesterov momentum"),
            p(
                "paramwise_cfg",
                Ty::Record(PARAMWISE),
                Def::Record,
                "per-parameter multipliers",
            ),
        ],
    },
    Component {
        name: "adamw",
        category: Optimizer,
        doc: "AdamW (torch.optim.AdamW semantics)",
        params: &[
            p("lr", POSF, Def::Required, "base learning rate"),
            p(
                "betas",
                Ty::List(&UNIT),
                Def::Floats(&[0.9, 0.999]),
                "moment decay rates",
            ),
            p("eps", POSF, Def::Float(1e-8), "added to the denominator"),
            p(
                "weight_decay",
                NONNEG,
                Def::Float(0.01),
                "decoupled weight decay",
            ),
            p("amsgrad", Ty::Bool, Def::Bool(false), "AMSGrad variant"),
            p(
                "paramwise_cfg",
                Ty::Record(PARAMWISE),
                Def::Record,
                "per-parameter multipliers",
            ),
        ],
    },
    Component {
        name: "constant",
        category: Warmup,
        doc: "constant warmup: value × ratio, then the schedule",
        params: WARMUP,
    },
    Component {
        name: "linear",
        category: Warmup,
        doc: "linear warmup from value × ratio to the value",
        params: WARMUP,
    },
    Component {
        name: "exp",
        category: Warmup,
        doc: "exponential warmup from value × ratio to the value",
        params: WARMUP,
    },
    Component {
        name: "constant",
        category: Policy,
        doc: "the base value throughout (mmcv's fixed)",
        params: &[BY, DUR],
    },
    Component {
        name: "step",
        category: Policy,
        doc: "multiply by gamma at each milestone (step/multistep)",
        params: &[
            p(
                "at",
                Ty::List(&LEN),
                Def::Required,
                "milestones (`[8 epochs, 11 epochs]`)",
            ),
            p(
                "gamma",
                Ty::Nullable(&UNIT),
                Def::Null,
                "factor at each milestone (null: 0.1 for lr, 0.5 for momentum, as mmcv)",
            ),
            MIN_LR,
            BY,
            DUR,
        ],
    },
    Component {
        name: "cosine",
        category: Policy,
        doc: "cosine annealing to min_lr",
        params: &[MIN_LR, MIN_LR_RATIO, MIN_M, MIN_M_RATIO, BY, DUR],
    },
    Component {
        name: "flat_cosine",
        category: Policy,
        doc: "flat, then cosine annealing from start_percent of the run",
        params: &[
            p(
                "start_percent",
                UNIT,
                Def::Float(0.75),
                "fraction of the run before annealing starts",
            ),
            MIN_LR,
            MIN_LR_RATIO,
            BY,
            DUR,
        ],
    },
    Component {
        name: "cosine_restart",
        category: Policy,
        doc: "cosine annealing with warm restarts",
        params: &[
            p(
                "periods",
                Ty::List(&LEN),
                Def::Required,
                "length of each cycle",
            ),
            p(
                "restart_weights",
                Ty::Nullable(&Ty::List(&NONNEG)),
                Def::Null,
                "peak factor of each cycle",
            ),
            MIN_LR,
            MIN_LR_RATIO,
            BY,
            DUR,
        ],
    },
    Component {
        name: "poly",
        category: Policy,
        doc: "polynomial decay to min_lr",
        params: &[
            p("power", NONNEG, Def::Float(1.0), "exponent"),
            p("min_lr", NUM, Def::Float(0.0), "final value"),
            BY,
            DUR,
        ],
    },
    Component {
        name: "exp",
        category: Policy,
        doc: "value × gamma^progress",
        params: &[p("gamma", POSF, Def::Required, "factor per step"), BY, DUR],
    },
    Component {
        name: "inv",
        category: Policy,
        doc: "value × (1 + gamma × progress)^-power",
        params: &[
            p("gamma", NONNEG, Def::Required, "rate"),
            p("power", NONNEG, Def::Float(1.0), "exponent"),
            BY,
            DUR,
        ],
    },
    Component {
        name: "cyclic",
        category: Policy,
        doc: "cyclic schedule (mmcv CyclicLrUpdater)",
        params: &[
            p(
                "target_ratio",
                Ty::Nullable(&Ty::Or(&[NONNEG, Ty::List(&NONNEG)])),
                Def::Null,
                "peak and final ratios",
            ),
            p("cyclic_times", POS, Def::Int(1), "number of cycles"),
            p(
                "step_ratio_up",
                UNIT,
                Def::Float(0.4),
                "fraction of a cycle spent rising",
            ),
            p(
                "anneal_strategy",
                ANNEAL,
                Def::Str("cos"),
                "shape of each ramp",
            ),
            p("gamma", UNIT, Def::Float(1.0), "peak decay per cycle"),
            BY,
            DUR,
        ],
    },
    Component {
        name: "one_cycle",
        category: Policy,
        doc: "one-cycle policy (Smith)",
        params: &[
            p(
                "max_lr",
                Ty::Nullable(&Ty::Or(&[POSF, Ty::List(&POSF)])),
                Def::Null,
                "peak value (per param group)",
            ),
            p(
                "total_steps",
                Ty::Nullable(&POS),
                Def::Null,
                "length (default: the run)",
            ),
            p("pct_start", UNIT, Def::Float(0.3), "fraction spent rising"),
            p(
                "anneal_strategy",
                ANNEAL,
                Def::Str("cos"),
                "shape of each ramp",
            ),
            p(
                "div_factor",
                POSF,
                Def::Float(25.0),
                "max_lr / initial value",
            ),
            p(
                "final_div_factor",
                POSF,
                Def::Float(1e4),
                "initial value / final value",
            ),
            p(
                "three_phase",
                Ty::Bool,
                Def::Bool(false),
                "add a third, annihilation phase",
            ),
            BY,
            DUR,
        ],
    },
    Component {
        name: "custom",
        category: Policy,
        doc: "an expression over epoch, iter, progress and base_lr, compiled to native code",
        params: &[
            p(
                "expr",
                Ty::Str,
                Def::Required,
                "e.g. \"base_lr * (1 - progress) ^ 0.9\"",
            ),
            BY,
            DUR,
        ],
    },
    Component {
        name: "checkpoint",
        category: Hook,
        doc: "save checkpoints (CheckpointHook)",
        params: &[
            p(
                "every",
                Ty::Period,
                Def::Str("1 epoch"),
                "interval (`1 epoch`, `2000 iters`)",
            ),
            p(
                "max_keep_ckpts",
                INT,
                Def::Int(-1),
                "checkpoints kept (-1: all)",
            ),
            p(
                "save_best",
                Ty::Nullable(&Ty::Str),
                Def::Null,
                "keep the best checkpoint by this metric (`bbox_mAP`)",
            ),
            p(
                "rule",
                Ty::Nullable(&Ty::Enum(&["greater", "less"])),
                Def::Null,
                "which direction is better for save_best (default: from the metric)",
            ),
            p(
                "save_optimizer",
                Ty::Bool,
                Def::Bool(true),
                "include optimizer state",
            ),
            p(
                "save_last",
                Ty::Bool,
                Def::Bool(true),
                "always save the last one",
            ),
            p(
                "out_dir",
                Ty::Nullable(&Ty::Path),
                Def::Null,
                "folder (default: the work_dir)",
            ),
        ],
    },
    Component {
        name: "log",
        category: Hook,
        doc: "log losses, learning rate, time and metrics (TextLoggerHook and friends)",
        params: &[
            p(
                "every",
                Ty::Period,
                Def::Str("50 iters"),
                "interval in iterations (`50 iters`)",
            ),
            p(
                "to",
                Ty::List(&Ty::Enum(&["text", "json", "tensorboard"])),
                Def::Strs(&["text", "json"]),
                "outputs",
            ),
            p(
                "stdout",
                Ty::Bool,
                Def::Bool(true),
                "print lines on stdout too",
            ),
            p(
                "progress_bar",
                Ty::Bool,
                Def::Bool(true),
                "progress bar with ETA when stderr is a terminal",
            ),
            p(
                "ignore_last",
                Ty::Bool,
                Def::Bool(true),
                "skip the partial interval at the end of an epoch",
            ),
        ],
    },
    Component {
        name: "eval",
        category: Hook,
        doc: "evaluate on data.val (EvalHook)",
        params: &[
            p("every", Ty::Period, Def::Str("1 epoch"), "interval"),
            p(
                "start",
                Ty::Nullable(&Ty::Period),
                Def::Null,
                "first evaluation",
            ),
            p(
                "metric",
                Ty::Nullable(&Ty::Enum(&[
                    "coco_bbox",
                    "voc_map",
                    "proposal_recall",
                    "proposal_fast",
                ])),
                Def::Null,
                "evaluator (default: proposal_recall for an rpn, coco_bbox otherwise)",
            ),
            p(
                "at",
                Ty::Nullable(&Ty::List(&Ty::Period)),
                Def::Null,
                "evaluate exactly at these points instead of every",
            ),
            p(
                "sanity_batches",
                NAT,
                Def::Int(2),
                "batches of a sanity evaluation before training (0: off)",
            ),
        ],
    },
    Component {
        name: "ema",
        category: Hook,
        doc: "exponential moving average of the weights (ExpMomentumEMAHook)",
        params: &[
            p("momentum", UNIT, Def::Float(0.0002), "EMA momentum"),
            p("interval", POS, Def::Int(1), "iterations between updates"),
            p(
                "warm_up",
                NAT,
                Def::Int(100),
                "iterations of momentum warmup",
            ),
        ],
    },
    Component {
        name: "early_stopping",
        category: Hook,
        doc: "stop when a metric stops improving",
        params: &[
            p(
                "monitor",
                Ty::Str,
                Def::Required,
                "metric to watch (`bbox_mAP`)",
            ),
            p(
                "patience",
                POS,
                Def::Int(5),
                "evaluations without improvement before stopping",
            ),
            p(
                "min_delta",
                NONNEG,
                Def::Float(0.0),
                "least change that counts as improvement",
            ),
            p(
                "rule",
                Ty::Nullable(&Ty::Enum(&["greater", "less"])),
                Def::Null,
                "which direction is better (default: from the metric)",
            ),
        ],
    },
    Component {
        name: "optimizer",
        category: Hook,
        doc: "backward and optimizer step, gradient clipping and accumulation (OptimizerHook)",
        params: &[
            p(
                "grad_clip",
                Ty::Nullable(&Ty::Record(GRAD_CLIP)),
                Def::Null,
                "clip the gradient norm",
            ),
            p(
                "cumulative_iters",
                POS,
                Def::Int(1),
                "iterations whose gradients add up before a step (accumulation)",
            ),
        ],
    },
    Component {
        name: "fp16",
        category: Hook,
        doc: "mixed precision with loss scaling (mmcv's Fp16OptimizerHook): convolutions in f16, f32 master weights; sets `runtime.precision = fp16`",
        params: &[p(
            "loss_scale",
            Ty::Or(&[Ty::Enum(&["dynamic"]), POSF, Ty::Record(DYNAMIC_SCALE)]),
            Def::Float(512.0),
            "a fixed scale (mmcv's default, 512), `dynamic` (torch's GradScaler defaults) or a record of GradScaler settings",
        )],
    },
    Component {
        name: "sampler_seed",
        category: Hook,
        doc: "reseed the sampler each epoch (DistSamplerSeedHook)",
        params: &[],
    },
    Component {
        name: "sync_buffers",
        category: Hook,
        doc: "synchronise buffers (BN statistics) across devices each epoch",
        params: &[],
    },
    Component {
        name: "profiler",
        category: Hook,
        doc: "profile iterations; not supported by this build: `check` refuses it (E0311)",
        params: &[
            p(
                "at",
                Ty::List(&NAT),
                Def::Ints(&[1]),
                "iterations to profile",
            ),
            p(
                "out_dir",
                Ty::Nullable(&Ty::Path),
                Def::Null,
                "folder (default: the work_dir)",
            ),
        ],
    },
];

/// `torch.amp.GradScaler`'s settings (mmcv passes a `loss_scale` dict to it).
const DYNAMIC_SCALE: &[Param] = &[
    p("init_scale", POSF, Def::Float(65536.0), "the first scale"),
    p(
        "growth_factor",
        Ty::Float {
            min: 1.0,
            max: f64::INFINITY,
        },
        Def::Float(2.0),
        "the scale's factor after `growth_interval` finite steps",
    ),
    p(
        "backoff_factor",
        Ty::Float { min: 0.0, max: 1.0 },
        Def::Float(0.5),
        "the scale's factor after a non-finite step",
    ),
    p(
        "growth_interval",
        POS,
        Def::Int(2000),
        "finite steps in a row before the scale grows",
    ),
];

const GRAD_CLIP: &[Param] = &[
    p(
        "max_norm",
        Ty::Nullable(&POSF),
        Def::Null,
        "largest gradient norm",
    ),
    p("norm_type", POSF, Def::Float(2.0), "p of the p-norm"),
    p(
        "clip_value",
        Ty::Nullable(&POSF),
        Def::Null,
        "clip each gradient element to [-v, v] instead",
    ),
];

pub const HOOK_COMMON: &[Param] = &[
    p(
        "before",
        Ty::List(&Ty::Str),
        Def::Strs(&[]),
        "run before these hooks at each point",
    ),
    p(
        "after",
        Ty::List(&Ty::Str),
        Def::Strs(&[]),
        "run after these hooks at each point",
    ),
];

const SCHEDULE: &[Param] = &[
    p(
        "warmup",
        Ty::Nullable(&Ty::Comp(Warmup)),
        Def::Null,
        "warmup phase",
    ),
    p(
        "main",
        Ty::Comp(Policy),
        Def::Comp("constant"),
        "the policy after warmup",
    ),
];

const SCHEDULES: &[Param] = &[
    p(
        "lr",
        Ty::Record(SCHEDULE),
        Def::Absent,
        "learning-rate schedule",
    ),
    p(
        "momentum",
        Ty::Record(SCHEDULE),
        Def::Absent,
        "momentum schedule",
    ),
];

const HOOKS: &[Param] = &[
    p(
        "checkpoint",
        Ty::Named(Hook),
        Def::Absent,
        "save checkpoints",
    ),
    p("log", Ty::Named(Hook), Def::Absent, "logging"),
    p("eval", Ty::Named(Hook), Def::Absent, "evaluation"),
    p("ema", Ty::Named(Hook), Def::Absent, "weight EMA"),
    p(
        "early_stopping",
        Ty::Named(Hook),
        Def::Absent,
        "early stopping",
    ),
    p(
        "optimizer",
        Ty::Named(Hook),
        Def::Absent,
        "gradient clipping and accumulation",
    ),
    p("fp16", Ty::Named(Hook), Def::Absent, "mixed precision"),
    p(
        "sampler_seed",
        Ty::Named(Hook),
        Def::Absent,
        "sampler reseeding",
    ),
    p(
        "sync_buffers",
        Ty::Named(Hook),
        Def::Absent,
        "buffer synchronisation",
    ),
    p("profiler", Ty::Named(Hook), Def::Absent, "profiling"),
];

const RUN: &[Param] = &[
    p(
        "epochs",
        Ty::Nullable(&POS),
        Def::Null,
        "run length in epochs (give this or iters)",
    ),
    p(
        "iters",
        Ty::Nullable(&POS),
        Def::Null,
        "run length in iterations (give this or epochs)",
    ),
    p(
        "workflow",
        Ty::List(&Ty::Phase),
        Def::Required,
        "phases repeated in order (`[train 1 epoch, val 1 epoch]`)",
    ),
];

/// mmdetection's `auto_scale_lr`.
const AUTO_SCALE_LR: &[Param] = &[
    p(
        "enable",
        Ty::Bool,
        Def::Bool(true),
        "scale optimizer.lr by the batch per optimizer step (devices × samples_per_gpu × cumulative_iters) over base_batch_size (mmdetection's switch; `false` is as if the record were absent)",
    ),
    p(
        "base_batch_size",
        POS,
        Def::Int(16),
        "the total batch optimizer.lr was tuned for (mmdetection's 8 GPUs × 2 images)",
    ),
];

const RUNTIME: &[Param] = &[
    p("seed", Ty::Nullable(&NAT), Def::Int(0), "random seed"),
    p(
        "deterministic",
        Ty::Bool,
        Def::Bool(false),
        "deterministic kernels: on cuda, only convolution algorithms cuDNN reports deterministic (PyTorch's `cudnn.deterministic`); the cpu and wgpu backends and mmrun's own CUDA kernels are always deterministic",
    ),
    p(
        "tf32",
        Ty::Bool,
        Def::Bool(true),
        "on cuda, let f32 convolutions and matrix products run on TF32 tensor cores (inputs rounded to 10 mantissa bits, sums in f32: PyTorch's `allow_tf32`); `false` is strict f32. The cpu and wgpu backends always compute strict f32",
    ),
    p("work_dir", Ty::Str, Def::Str("work_dirs"), "output folder"),
    p(
        "devices",
        POS,
        Def::Int(1),
        "devices the batch size and learning rate were written for (the ranks a run has override it; another count is a warning)",
    ),
    p(
        "backend",
        Ty::Enum(&["cpu", "cuda", "wgpu"]),
        Def::Str("cpu"),
        "compute backend (`cuda` and `wgpu` are cargo features; `--device` picks an ordinal or a wgpu adapter)",
    ),
    p(
        "precision",
        Ty::Enum(&["fp32", "bf16", "fp16"]),
        Def::Str("fp32"),
        "arithmetic: f32, or mixed precision with convolutions in bf16 or f16 (f16 scales its loss: see the `fp16` hook); half-precision storage, f32 arithmetic, on every backend",
    ),
    p(
        "auto_scale_lr",
        Ty::Nullable(&Ty::Record(AUTO_SCALE_LR)),
        Def::Null,
        "mmdetection's automatic LR scaling by the total batch (`{ base_batch_size = 16 }`)",
    ),
    p(
        "launcher",
        Ty::Enum(&["none", "mpi", "pytorch", "slurm"]),
        Def::Str("none"),
        "how ranks are started: `none` (one process) or `mpi` (CPU ranks under `mpirun`, `srun --mpi=pmix` or `mmrun exec --nproc N`; the `mpi` build feature); `pytorch` and `slurm` need NCCL, which this build has not got (E0311)",
    ),
    p(
        "resume",
        Ty::Nullable(&Ty::Or(&[Ty::Enum(&["auto"]), Ty::Path])),
        Def::Null,
        "`auto` (latest in work_dir) or a checkpoint",
    ),
    p(
        "load_from",
        Ty::Nullable(&Ty::Or(&[Ty::Path, Ty::Comp(Init)])),
        Def::Null,
        "initial weights of the whole model (no training state): a file, or `pretrained { … }`",
    ),
];

pub const SECTIONS: &[Param] = &[
    p("model", Ty::Comp(Detector), Def::Absent, "the detector"),
    p(
        "data",
        Ty::Record(super::data::DATA),
        Def::Absent,
        "datasets, pipelines, batch size",
    ),
    p(
        "optimizer",
        Ty::Comp(Optimizer),
        Def::Absent,
        "the optimizer",
    ),
    p(
        "schedule",
        Ty::Record(SCHEDULES),
        Def::Absent,
        "learning-rate and momentum schedules",
    ),
    p("hooks", Ty::Record(HOOKS), Def::Absent, "hooks by name"),
    p("run", Ty::Record(RUN), Def::Absent, "length and workflow"),
    p(
        "runtime",
        Ty::Record(RUNTIME),
        Def::Record,
        "seed, devices, work_dir, resume",
    ),
];
