// Softmax cross-entropy with i32 labels (`backend::wgpu::loss`), its own module because its
// label binding is `array<i32>` where loss.wgsl binds f32 targets. torch's
// `cross_entropy(reduction='none', ignore_index, label_smoothing = ε)`, as the CPU reference:
// a label equal to ignore_index or outside [0, K) gives loss 0 and an all-zero gradient row.
//
// Binding layout (see kernels/README.md): 0 = prm (u32 words, read), 1 = logits [N, K],
// 2 = labels [N] (read); forward: 3 = out [N]; gradient: 3 = dy [N] (read), 4 = dx [N, K].
// prm = [n_rows, n_cls, ignore_index (i32 bits), ε (f32 bits)].
// One workgroup per row (grid-stride over rows): its 256 threads stride the row's columns and
// combine their partial max / sums in a fixed-order tree, so results repeat run to run.

@group(0) @binding(0) var<storage, read> prm: array<u32>;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<i32>;
@group(0) @binding(3) var<storage, read_write> ce_out: array<f32>;
@group(0) @binding(3) var<storage, read> dy_in: array<f32>;
@group(0) @binding(4) var<storage, read_write> dx_out: array<f32>;

var<workgroup> red: array<f32, 256>;

// The tree reduction of red[0..256] into red[0] (max when `is_max`, else sum), then a barrier
// so every thread may read red[0]. Called in workgroup-uniform control flow only.
fn combine(lid: u32, is_max: bool) -> f32 {
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            let o = red[lid + s];
            red[lid] = select(red[lid] + o, max(red[lid], o), is_max);
        }
        workgroupBarrier();
    }
    let v = red[0];
    // Nobody may overwrite red before everyone has read the result.
    workgroupBarrier();
    return v;
}

// The row's log-sum-exp: max, then m + ln Σ exp(x - m), both reduced over the workgroup.
fn row_lse(lid: u32, base: u32, k: u32) -> f32 {
    var mx = bitcast<f32>(0xff800000u);
    for (var j = lid; j < k; j += WG) {
        mx = max(mx, logits[base + j]);
    }
    red[lid] = mx;
    let m = combine(lid, true);
    var s = 0.0;
    for (var j = lid; j < k; j += WG) {
        s += exp_p(logits[base + j] - m);
    }
    red[lid] = s;
    return m + log_p(combine(lid, false));
}

// Whether row r's label counts (not ignored, within [0, K)).
fn counted(lab: i32, k: u32) -> bool {
    return lab != bitcast<i32>(prm[2]) && lab >= 0 && u32(lab) < k;
}

@compute @workgroup_size(256)
fn ce_fwd(@builtin(local_invocation_id) lid3: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let lid = lid3.x;
    let rows = prm[0];
    let k = prm[1];
    let eps = bitcast<f32>(prm[3]);
    for (var r = wid.x; r < rows; r += nwg.x) {
        let base = r * k;
        let lse = row_lse(lid, base, k);
        // Σ (lse - x_j) over the row, only needed with smoothing; the branch holds barriers, which
        // is allowed because ε (a read-only parameter) is the same for the whole workgroup.
        var spread = 0.0;
        if (eps != 0.0) {
            var s = 0.0;
            for (var j = lid; j < k; j += WG) {
                s += lse - logits[base + j];
            }
            red[lid] = s;
            spread = combine(lid, false);
        }
        if (lid == 0u) {
            let lab = labels[r];
            var v = 0.0;
            if (counted(lab, k)) {
                let nll = lse - logits[base + u32(lab)];
                v = nll;
                if (eps != 0.0) {
                    v = (1.0 - eps) * nll + eps * spread / f32(k);
                }
            }
            ce_out[r] = v;
        }
    }
}

// dx = (exp(x_j - lse) - ε/K - (1 - ε)[j = label]) dy.
@compute @workgroup_size(256)
fn ce_bwd(@builtin(local_invocation_id) lid3: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let lid = lid3.x;
    let rows = prm[0];
    let k = prm[1];
    let eps = bitcast<f32>(prm[3]);
    let off = eps / f32(k);
    for (var r = wid.x; r < rows; r += nwg.x) {
        let base = r * k;
        let lse = row_lse(lid, base, k);
        let lab = labels[r];
        let keep = counted(lab, k);
        let d = dy_in[r];
        for (var j = lid; j < k; j += WG) {
            var g = exp_p(logits[base + j] - lse) - off;
            if (j == u32(lab)) {
                g -= 1.0 - eps;
            }
            dx_out[base + j] = select(0.0, g * d, keep);
        }
    }
}
