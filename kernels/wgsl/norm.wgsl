// Batch and group normalisation (backend::wgpu::norm): statistics, apply and the four
// gradients, with the CPU backend's semantics (backend::cpu::norm). Binding layout as every
// module: 0 = prm (u32 words, read), 1.. = inputs (read), last = output (read_write).
//
// prm = [total, hw, c, inner, outer, ostride, nstat, eps bits, n] for every entry. A statistic's
// elements are `outer` runs of `inner` contiguous elements, run r of statistic s starting at
// s * inner + r * ostride (batch: runs are the N planes of a channel; group: one run of C/G
// planes), so element i belongs to statistic (i / inner) % nstat and channel (i / hw) % c.
// The reductions run one workgroup per statistic (or channel), grid-stride over workgroups;
// each thread keeps compensated (Kahan) partial sums, then a tree over the workgroup, so the
// f32 sums stay close to the CPU's f64 ones on large planes.

@group(0) @binding(0) var<storage, read> prm: array<u32>;

// Every entry reads x at binding 1; the others by their input lists (see norm.rs).
@group(0) @binding(1) var<storage, read> x_in: array<f32>;
@group(0) @binding(2) var<storage, read> st: array<f32>;
// norm_stats: one input, so binding 2 is its output.
@group(0) @binding(2) var<storage, read_write> stats_out: array<f32>;
// Third input: gamma (apply, apply_grad_x, apply_grad_stats), dy (apply_grad_affine) or
// dstats (stats_grad).
@group(0) @binding(3) var<storage, read> in3: array<f32>;
// Fourth input: beta (apply) or dy (apply_grad_x, apply_grad_stats).
@group(0) @binding(4) var<storage, read> in4: array<f32>;
// Output of the two-input entry (norm_stats_merge).
@group(0) @binding(3) var<storage, read_write> out2: array<f32>;
// Outputs of the three- and four-input entries.
@group(0) @binding(4) var<storage, read_write> out3: array<f32>;
@group(0) @binding(5) var<storage, read_write> out4: array<f32>;

var<workgroup> red: array<vec2<f32>, 256>;

// Kahan step: adds v to sum, carrying the rounding error in comp.
fn kahan(sum: ptr<function, vec2<f32>>, comp: ptr<function, vec2<f32>>, v: vec2<f32>) {
    let y = v - *comp;
    let t = *sum + y;
    *comp = (t - *sum) - y;
    *sum = t;
}

// The workgroup's total of v (two sums at once); every invocation gets it. Called from
// uniform control flow only (it has barriers).
fn reduce2(lid: u32, v: vec2<f32>) -> vec2<f32> {
    red[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            red[lid] += red[lid + s];
        }
        workgroupBarrier();
    }
    let r = red[0];
    // Nobody may overwrite red[0] (the next call) before everyone has read it.
    workgroupBarrier();
    return r;
}

// Flat index of the j-th element of statistic s.
fn stat_elem(s: u32, j: u32) -> u32 {
    let inner = prm[3];
    let ostride = prm[5];
    return s * inner + (j / inner) * ostride + j % inner;
}

// Statistic of flat element i.
fn stat_of(i: u32) -> u32 {
    return (i / prm[3]) % prm[6];
}

// Channel of flat element i.
fn chan_of(i: u32) -> u32 {
    return (i / prm[1]) % prm[2];
}

fn invstd(v: f32) -> f32 {
    return 1.0 / sqrt(v + bitcast<f32>(prm[7]));
}

// ---- reductions: one workgroup per statistic (or channel) ----

// x → [2, S]: mean, then the biased variance as the mean squared deviation (two passes).
@compute @workgroup_size(256)
fn norm_stats(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let nstat = prm[6];
    let m = prm[3] * prm[4];
    let mf = f32(m);
    for (var s = wid.x; s < nstat; s += nwg.x) {
        var sum = vec2<f32>(0.0);
        var comp = vec2<f32>(0.0);
        for (var j = lid.x; j < m; j += WG) {
            kahan(&sum, &comp, vec2<f32>(x_in[stat_elem(s, j)], 0.0));
        }
        let mean = reduce2(lid.x, sum).x / mf;
        sum = vec2<f32>(0.0);
        comp = vec2<f32>(0.0);
        for (var j = lid.x; j < m; j += WG) {
            let d = x_in[stat_elem(s, j)] - mean;
            kahan(&sum, &comp, vec2<f32>(d * d, 0.0));
        }
        let sq = reduce2(lid.x, sum).x;
        if (lid.x == 0u) {
            stats_out[s] = mean;
            stats_out[nstat + s] = sq / mf;
        }
    }
}

// (x, stats, gamma, dy) → [2, S]: d/dmean = -invstd Σ g, d/dvar = -invstd³/2 Σ g (x - mean),
// with g = dy · gamma[channel].
@compute @workgroup_size(256)
fn norm_apply_grad_stats(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let nstat = prm[6];
    let m = prm[3] * prm[4];
    for (var s = wid.x; s < nstat; s += nwg.x) {
        let mean = st[s];
        let inv = invstd(st[nstat + s]);
        var sum = vec2<f32>(0.0);
        var comp = vec2<f32>(0.0);
        for (var j = lid.x; j < m; j += WG) {
            let i = stat_elem(s, j);
            let g = in4[i] * in3[chan_of(i)];
            kahan(&sum, &comp, vec2<f32>(g, g * (x_in[i] - mean)));
        }
        let t = reduce2(lid.x, sum);
        if (lid.x == 0u) {
            out4[s] = -inv * t.x;
            out4[nstat + s] = -0.5 * inv * inv * inv * t.y;
        }
    }
}

// (x, stats, dy) → [2, C]: dgamma = Σ dy (x - mean) invstd, dbeta = Σ dy over the channel's
// planes (each plane normalised by its own statistic).
@compute @workgroup_size(256)
fn norm_apply_grad_affine(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let hw = prm[1];
    let c = prm[2];
    let nstat = prm[6];
    let m = prm[8] * hw;
    for (var ch = wid.x; ch < c; ch += nwg.x) {
        var sum = vec2<f32>(0.0);
        var comp = vec2<f32>(0.0);
        for (var j = lid.x; j < m; j += WG) {
            let i = ((j / hw) * c + ch) * hw + j % hw;
            let s = stat_of(i);
            let d = in3[i];
            kahan(&sum, &comp, vec2<f32>(d * (x_in[i] - st[s]) * invstd(st[nstat + s]), d));
        }
        let t = reduce2(lid.x, sum);
        if (lid.x == 0u) {
            out3[ch] = t.x;
            out3[c + ch] = t.y;
        }
    }
}

// ---- elementwise: grid-stride over the `total` elements of x ----

// (x, stats, gamma, beta) → (x - mean) · (invstd · gamma) + beta.
@compute @workgroup_size(256)
fn norm_apply(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = prm[0];
    let nstat = prm[6];
    for (var i = gid.x; i < n; i += nwg.x * WG) {
        let s = stat_of(i);
        let ch = chan_of(i);
        let scale = invstd(st[nstat + s]) * in3[ch];
        out4[i] = (x_in[i] - st[s]) * scale + in4[ch];
    }
}

// (x, stats, gamma, dy) → dy · invstd · gamma (x is not read: the statistics are constants).
@compute @workgroup_size(256)
fn norm_apply_grad_x(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = prm[0];
    let nstat = prm[6];
    for (var i = gid.x; i < n; i += nwg.x * WG) {
        let scale = invstd(st[nstat + stat_of(i)]) * in3[chan_of(i)];
        out4[i] = in4[i] * scale;
    }
}

// (x, stats, dstats) → dmean / M + dvar · 2 (x - mean) / M, M the elements per statistic.
@compute @workgroup_size(256)
fn norm_stats_grad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = prm[0];
    let nstat = prm[6];
    let mf = f32(prm[3] * prm[4]);
    for (var i = gid.x; i < n; i += nwg.x * WG) {
        let s = stat_of(i);
        out3[i] = in3[s] / mf + in3[nstat + s] * 2.0 * (x_in[i] - st[s]) / mf;
    }
}

// Batch statistics of two disjoint slabs of the images (binding 1: of the slabs so far; binding
// 2: of the next) → those of their union, as Chan et al. merge them. prm = [S, wa, wb]: the
// slabs' shares of the elements (f32 bits); the union's variance adds the spread of the means,
// wa · wb · (mean_a - mean_b)². Serves backend::wgpu::split, a batch larger than a binding.
@compute @workgroup_size(256)
fn norm_stats_merge(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let nstat = prm[0];
    let wa = bitcast<f32>(prm[1]);
    let wb = bitcast<f32>(prm[2]);
    for (var i = gid.x; i < nstat; i += nwg.x * WG) {
        let ma = x_in[i];
        let mb = st[i];
        let d = ma - mb;
        out2[i] = wa * ma + wb * mb;
        out2[nstat + i] = wa * x_in[nstat + i] + wb * st[nstat + i] + wa * wb * d * d;
    }
}
