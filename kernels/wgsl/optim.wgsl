// torch.optim's SGD and AdamW updates, as `backend::cpu::optim` computes them (the same f32
// operations in the same order). A dispatch has one output, so an update is two or three
// dispatches, each over one parameter's first n elements: the state first, then the value.
// Every entry that reads the gradient multiplies it by its last word, `grad_scale` (gradient
// clipping's coefficient; × 1 changes no value).
// Binding layout as every module: 0 = prm (u32 words; f32 scalars as bits), then the inputs
// (read), last = the output (read_write).

@group(0) @binding(0) var<storage, read> prm: array<u32>;
@group(0) @binding(1) var<storage, read> opt_a: array<f32>;
@group(0) @binding(2) var<storage, read> opt_b: array<f32>;
@group(0) @binding(3) var<storage, read_write> opt_out: array<f32>;
@group(0) @binding(2) var<storage, read_write> opt_out1: array<f32>;

fn fprm(i: u32) -> f32 {
    return bitcast<f32>(prm[i]);
}

// SGD's direction d = g + wd·p (just g without weight decay, as torch skips the add).
fn sgd_direction(g: f32, p: f32, wd: f32) -> f32 {
    if (wd != 0.0) {
        return g + wd * p;
    }
    return g;
}

// The momentum buffer: prm = [n, wd, momentum, 1 - dampening, fresh, grad_scale]; inputs
// grad, value.
@compute @workgroup_size(256)
fn sgd_momentum(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = prm[0];
    let wd = fprm(1u);
    let mom = fprm(2u);
    let damp = fprm(3u);
    let fresh = prm[4] != 0u;
    let gs = fprm(5u);
    for (var i = gid.x; i < n; i += nwg.x * WG) {
        let d = sgd_direction(opt_a[i] * gs, opt_b[i], wd);
        if (fresh) {
            opt_out[i] = d;
        } else {
            opt_out[i] = opt_out[i] * mom + damp * d;
        }
    }
}

// The value: prm = [n, -lr, wd, momentum, mode, grad_scale]; inputs grad, buf (grad again
// when mode 0).
// mode 0: p -= lr·d; 1: p -= lr·buf; 2 (nesterov): p -= lr·(d + μ·buf).
@compute @workgroup_size(256)
fn sgd_apply(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = prm[0];
    let neg_lr = fprm(1u);
    let wd = fprm(2u);
    let mom = fprm(3u);
    let mode = prm[4];
    let gs = fprm(5u);
    for (var i = gid.x; i < n; i += nwg.x * WG) {
        let p = opt_out[i];
        var d = sgd_direction(opt_a[i] * gs, p, wd);
        if (mode == 1u) {
            d = opt_b[i];
        } else if (mode == 2u) {
            d = d + mom * opt_b[i];
        }
        opt_out[i] = p + neg_lr * d;
    }
}

// exp_avg: prm = [n, 1 - beta1, fresh, grad_scale]; input grad. torch's lerp with
// weight < 0.5.
@compute @workgroup_size(256)
fn adamw_exp_avg(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = prm[0];
    let w1 = fprm(1u);
    let fresh = prm[2] != 0u;
    let gs = fprm(3u);
    for (var i = gid.x; i < n; i += nwg.x * WG) {
        var m = opt_out1[i];
        if (fresh) {
            m = 0.0;
        }
        opt_out1[i] = m + w1 * (opt_a[i] * gs - m);
    }
}

// exp_avg_sq: prm = [n, beta2, 1 - beta2, fresh, grad_scale]; input grad.
@compute @workgroup_size(256)
fn adamw_exp_avg_sq(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = prm[0];
    let b2 = fprm(1u);
    let w2 = fprm(2u);
    let fresh = prm[3] != 0u;
    let gs = fprm(4u);
    for (var i = gid.x; i < n; i += nwg.x * WG) {
        var v = opt_out1[i];
        if (fresh) {
            v = 0.0;
        }
        let g = opt_a[i] * gs;
        opt_out1[i] = v * b2 + w2 * g * g;
    }
}

// The value: prm = [n, 1 - lr·wd, -lr / bias_correction1, sqrt(bias_correction2), eps];
// inputs exp_avg, exp_avg_sq (both already updated).
@compute @workgroup_size(256)
fn adamw_apply(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = prm[0];
    let decay = fprm(1u);
    let neg_step = fprm(2u);
    let bc2_sqrt = fprm(3u);
    let eps = fprm(4u);
    for (var i = gid.x; i < n; i += nwg.x * WG) {
        let p = opt_out[i] * decay;
        let denom = sqrt(opt_b[i]) / bc2_sqrt + eps;
        opt_out[i] = p + neg_step * (opt_a[i] / denom);
    }
}
