// Max pooling, nearest resizing and RoIAlign with their gradients on NCHW f32 maps
// (backend::wgpu::pool), with the CPU backend's semantics (backend::cpu::{pool, roi_align}).
// Binding layout as every module: 0 = prm (u32 words, read), 1.. = inputs (read), last =
// output (read_write). Grid-stride loops over the output's elements.
//
// The max-pool and resize gradients are gathers (each input element sums the outputs that
// came from it, in the CPU's scan order), so they are deterministic; RoIAlign's gradient is a
// scatter with a compare-and-swap float add (as torchvision's atomics): its last bits depend
// on the order the adds land in.

@group(0) @binding(0) var<storage, read> prm: array<u32>;

@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

const NO_TAP: u32 = 0xffffffffu;

// ---- max pooling: prm = [planes, h, w, oh, ow, kh, kw, sh, sw, ph, pw] ----

// max_pool2d_argmax writes each window's winner (index in its plane, NO_TAP for a window
// wholly in the padding) for the gradient, which reads it back at binding 2.
@group(0) @binding(2) var<storage, read_write> idx_out: array<u32>;
@group(0) @binding(2) var<storage, read> idx_in: array<u32>;
@group(0) @binding(3) var<storage, read_write> out3: array<f32>;

struct Best {
    at: u32,
    v: f32,
}

// The in-bounds part of window o along one axis: (first input index, tap count), as
// cpu::pool::window.
fn window(o: u32, k: u32, s: u32, p: u32, len: u32) -> vec2<u32> {
    let start = o * s;
    let lo = max(start, p);
    let hi = min(start + k, len + p);
    return vec2<u32>(lo - p, select(0u, hi - lo, hi > lo));
}

// Output element i's window maximum over `src`: the first maximum in scan order (padding is
// −∞, so a partly padded window takes its in-bounds maximum).
fn window_argmax(i: u32) -> Best {
    let h = prm[1];
    let w = prm[2];
    let oh = prm[3];
    let ow = prm[4];
    let plane = i / (oh * ow);
    let r = i - plane * oh * ow;
    let wy = window(r / ow, prm[5], prm[7], prm[9], h);
    let wx = window(r % ow, prm[6], prm[8], prm[10], w);
    if (wy.y == 0u || wx.y == 0u) {
        return Best(NO_TAP, bitcast<f32>(0xff800000u));
    }
    let base = plane * h * w;
    var best = Best(wy.x * w + wx.x, src[base + wy.x * w + wx.x]);
    for (var y = wy.x; y < wy.x + wy.y; y++) {
        for (var x = wx.x; x < wx.x + wx.y; x++) {
            let at = y * w + x;
            let v = src[base + at];
            if (v > best.v) {
                best = Best(at, v);
            }
        }
    }
    return best;
}

@compute @workgroup_size(256)
fn max_pool2d(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = prm[0] * prm[3] * prm[4];
    for (var i = gid.x; i < n; i += nwg.x * WG) {
        dst[i] = window_argmax(i).v;
    }
}

@compute @workgroup_size(256)
fn max_pool2d_argmax(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = prm[0] * prm[3] * prm[4];
    for (var i = gid.x; i < n; i += nwg.x * WG) {
        idx_out[i] = window_argmax(i).at;
    }
}

// Inputs (dy, argmax) → dx: each input element sums dy over the windows covering it whose
// winner it is, rows then columns (the order the CPU adds them in).
@compute @workgroup_size(256)
fn max_pool2d_grad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let h = prm[1];
    let w = prm[2];
    let oh = prm[3];
    let ow = prm[4];
    let n = prm[0] * h * w;
    for (var i = gid.x; i < n; i += nwg.x * WG) {
        let plane = i / (h * w);
        let at = i - plane * h * w;
        let y = at / w;
        let x = at % w;
        let ry = covering(y, prm[5], prm[7], prm[9], oh);
        let rx = covering(x, prm[6], prm[8], prm[10], ow);
        var acc = 0.0;
        for (var oy = ry.x; oy < ry.y; oy++) {
            for (var ox = rx.x; ox < rx.y; ox++) {
                let o = (plane * oh + oy) * ow + ox;
                if (idx_in[o] == at) {
                    acc += src[o];
                }
            }
        }
        out3[i] = acc;
    }
}

// The windows [first, end) along one axis whose padded span [o·s, o·s + k) holds input index
// v (at v + p in padded coordinates).
fn covering(v: u32, k: u32, s: u32, p: u32, len: u32) -> vec2<u32> {
    let vp = v + p;
    let first = select(0u, (vp + 1u - k + s - 1u) / s, vp + 1u > k);
    let end = min(vp / s + 1u, len);
    return vec2<u32>(first, max(first, end));
}

// ---- nearest resizing: prm = [planes, h, w, oh, ow], (h, w) the small side ----

// x → y: y[oy, ox] = x[oy·h / oh, ox·w / ow] (PyTorch's `nearest`, exact integer map).
@compute @workgroup_size(256)
fn upsample_nearest(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let h = prm[1];
    let w = prm[2];
    let oh = prm[3];
    let ow = prm[4];
    let n = prm[0] * oh * ow;
    for (var i = gid.x; i < n; i += nwg.x * WG) {
        let plane = i / (oh * ow);
        let r = i - plane * oh * ow;
        let sy = (r / ow) * h / oh;
        let sx = (r % ow) * w / ow;
        dst[i] = src[(plane * h + sy) * w + sx];
    }
}

// The outputs [first, end) along one axis that copy input v: oy·len / out == v exactly when
// ceil(v·out / len) <= oy < ceil((v + 1)·out / len).
fn copied_from(v: u32, len: u32, out: u32) -> vec2<u32> {
    return vec2<u32>((v * out + len - 1u) / len, ((v + 1u) * out + len - 1u) / len);
}

// dy → dx: each input element sums the outputs copied from it, rows then columns.
@compute @workgroup_size(256)
fn upsample_nearest_grad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let h = prm[1];
    let w = prm[2];
    let oh = prm[3];
    let ow = prm[4];
    let n = prm[0] * h * w;
    for (var i = gid.x; i < n; i += nwg.x * WG) {
        let plane = i / (h * w);
        let at = i - plane * h * w;
        let ry = copied_from(at / w, h, oh);
        let rx = copied_from(at % w, w, ow);
        var acc = 0.0;
        for (var oy = ry.x; oy < ry.y; oy++) {
            for (var ox = rx.x; ox < rx.y; ox++) {
                acc += src[(plane * oh + oy) * ow + ox];
            }
        }
        dst[i] = acc;
    }
}

// ---- RoIAlign: prm = [n, c, h, w, k, ph, pw, sampling_ratio, aligned, spatial_scale bits] ----
// One invocation per output bin (box, channel, p, q), forward and backward alike; each
// recomputes its box's geometry with torchvision's formulas in cpu::roi_align's order.

// roi_align: inputs (x, rois) → y.
@group(0) @binding(2) var<storage, read> rois_fwd: array<f32>;
// roi_align_grad: inputs (rois, dy) → dx (zeroed by the host first).
@group(0) @binding(1) var<storage, read> rois_bwd: array<f32>;
@group(0) @binding(2) var<storage, read> dy_bwd: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx_acc: array<atomic<u32>>;

struct RoiBox {
    y0: f32,
    x0: f32,
    bin_h: f32,
    bin_w: f32,
    gh: u32,
    gw: u32,
    count: f32,
}

// Samples per bin along an axis of `size` split into `bins`: the fixed ratio, or
// ceil(size / bins) (0 for an empty or inverted box).
fn grid_size(size: f32, bins: u32) -> u32 {
    if (prm[7] != 0u) {
        return prm[7];
    }
    let g = ceil(size / f32(bins));
    return select(0u, u32(g), g > 0.0);
}

// torchvision's box set-up from [x1, y1, x2, y2] in input pixels.
fn roi_box(x1: f32, y1: f32, x2: f32, y2: f32) -> RoiBox {
    let scale = bitcast<f32>(prm[9]);
    let aligned = prm[8] != 0u;
    let offset = select(0.0, 0.5, aligned);
    let x0 = x1 * scale - offset;
    let y0 = y1 * scale - offset;
    var rw = (x2 * scale - offset) - x0;
    var rh = (y2 * scale - offset) - y0;
    if (!aligned) {
        // Malformed boxes are forced to 1×1.
        rw = max(rw, 1.0);
        rh = max(rh, 1.0);
    }
    let gh = grid_size(rh, prm[5]);
    let gw = grid_size(rw, prm[6]);
    return RoiBox(y0, x0, rh / f32(prm[5]), rw / f32(prm[6]), gh, gw, f32(max(gh * gw, 1u)));
}

// The batch image a box's first column names, or NO_TAP when it names none (the CPU refuses
// such a box; here it reads nothing and gets no gradient, as the CUDA kernels).
fn roi_image(b: f32) -> u32 {
    if (b >= 0.0 && b == floor(b) && b < f32(prm[0])) {
        return u32(b);
    }
    return NO_TAP;
}

// Sample (iy, ix) of bin (p, q): (y, x) in feature-map pixels.
fn sample_at(bx: RoiBox, p: u32, q: u32, iy: u32, ix: u32) -> vec2<f32> {
    let y = bx.y0 + f32(p) * bx.bin_h + (f32(iy) + 0.5) * bx.bin_h / f32(bx.gh);
    let x = bx.x0 + f32(q) * bx.bin_w + (f32(ix) + 0.5) * bx.bin_w / f32(bx.gw);
    return vec2<f32>(y, x);
}

struct Sample {
    ok: bool,
    at: vec4<u32>,
    wt: vec4<f32>,
}

// torchvision's bilinear_interpolate: the four neighbours (offsets in the plane) and their
// weights; not ok outside [-1, size].
fn bilinear(yx: vec2<f32>, h: u32, w: u32) -> Sample {
    var s: Sample;
    var y = yx.x;
    var x = yx.y;
    if (y < -1.0 || y > f32(h) || x < -1.0 || x > f32(w)) {
        s.ok = false;
        return s;
    }
    if (y <= 0.0) {
        y = 0.0;
    }
    if (x <= 0.0) {
        x = 0.0;
    }
    var yl = u32(y);
    var yh = yl + 1u;
    if (yl >= h - 1u) {
        yl = h - 1u;
        yh = yl;
        y = f32(yl);
    }
    var xl = u32(x);
    var xh = xl + 1u;
    if (xl >= w - 1u) {
        xl = w - 1u;
        xh = xl;
        x = f32(xl);
    }
    let ly = y - f32(yl);
    let lx = x - f32(xl);
    let hy = 1.0 - ly;
    let hx = 1.0 - lx;
    s.ok = true;
    s.at = vec4<u32>(yl * w + xl, yl * w + xh, yh * w + xl, yh * w + xh);
    s.wt = vec4<f32>(hy * hx, hy * lx, ly * hx, ly * lx);
    return s;
}

// Output element `i` of [K, C, ph·pw] as (RoI, channel, bin).
fn roi_channel_bin(i: u32, c: u32, bins: u32) -> vec3<u32> {
    let k = i / (c * bins);
    let r = i - k * c * bins;
    let ch = r / bins;
    return vec3<u32>(k, ch, r - ch * bins);
}

@compute @workgroup_size(256)
fn roi_align(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let c = prm[1];
    let h = prm[2];
    let w = prm[3];
    let ph = prm[5];
    let pw = prm[6];
    let n = prm[4] * c * ph * pw;
    for (var i = gid.x; i < n; i += nwg.x * WG) {
        let kcb = roi_channel_bin(i, c, ph * pw);
        let k = kcb.x;
        let ch = kcb.y;
        let bin = kcb.z;
        let img = roi_image(rois_fwd[k * 5u]);
        if (img == NO_TAP) {
            out3[i] = 0.0;
            continue;
        }
        let bx = roi_box(rois_fwd[k * 5u + 1u], rois_fwd[k * 5u + 2u], rois_fwd[k * 5u + 3u], rois_fwd[k * 5u + 4u]);
        let base = (img * c + ch) * h * w;
        var acc = 0.0;
        for (var iy = 0u; iy < bx.gh; iy++) {
            for (var ix = 0u; ix < bx.gw; ix++) {
                let s = bilinear(sample_at(bx, bin / pw, bin % pw, iy, ix), h, w);
                if (s.ok) {
                    acc += s.wt.x * src[base + s.at.x] + s.wt.y * src[base + s.at.y]
                        + s.wt.z * src[base + s.at.z] + s.wt.w * src[base + s.at.w];
                }
            }
        }
        out3[i] = acc / bx.count;
    }
}

// dx[j] += v with a compare-and-swap loop (WGSL has no float atomics).
fn atomic_add_f32(j: u32, v: f32) {
    loop {
        let old = atomicLoad(&dx_acc[j]);
        let r = atomicCompareExchangeWeak(&dx_acc[j], old, bitcast<u32>(bitcast<f32>(old) + v));
        if (r.exchanged) {
            break;
        }
    }
}

// (rois, dy) → dx: each bin's dy · weight / count to each sample's four neighbours.
@compute @workgroup_size(256)
fn roi_align_grad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let c = prm[1];
    let h = prm[2];
    let w = prm[3];
    let ph = prm[5];
    let pw = prm[6];
    let n = prm[4] * c * ph * pw;
    for (var i = gid.x; i < n; i += nwg.x * WG) {
        let kcb = roi_channel_bin(i, c, ph * pw);
        let k = kcb.x;
        let ch = kcb.y;
        let bin = kcb.z;
        let img = roi_image(rois_bwd[k * 5u]);
        if (img == NO_TAP) {
            continue;
        }
        let bx = roi_box(rois_bwd[k * 5u + 1u], rois_bwd[k * 5u + 2u], rois_bwd[k * 5u + 3u], rois_bwd[k * 5u + 4u]);
        let base = (img * c + ch) * h * w;
        let g = dy_bwd[i];
        for (var iy = 0u; iy < bx.gh; iy++) {
            for (var ix = 0u; ix < bx.gw; ix++) {
                let s = bilinear(sample_at(bx, bin / pw, bin % pw, iy, ix), h, w);
                if (s.ok) {
                    atomic_add_f32(base + s.at.x, g * s.wt.x / bx.count);
                    atomic_add_f32(base + s.at.y, g * s.wt.y / bx.count);
                    atomic_add_f32(base + s.at.z, g * s.wt.z / bx.count);
                    atomic_add_f32(base + s.at.w, g * s.wt.w / bx.count);
                }
            }
        }
    }
}
