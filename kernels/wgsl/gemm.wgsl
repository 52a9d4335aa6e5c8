// Matrix products and convolutions as one tiled GEMM, C[z] = A[z] · B[z], whose operand loads
// and result store depend on the mode (an implicit GEMM: convolution windows are gathered while
// the tiles load, never materialised as im2col matrices):
//   mode 0 matmul            A = a (or aᵀ)          B = b (or bᵀ)        z = batch item
//   mode 1 conv forward       A = w [Co/g, Cg·kh·kw] B = x's windows     z = image · groups + group
//   mode 2 conv grad input    A = wᵀ                 B = dy, scattered   z = image · groups + group
//   mode 3 conv grad weight   A = dy [Co/g, N·OH·OW] B = x's windows    z = split · groups + group
// Every entry takes three inputs (bindings 1-3; unused ones are bound to a used buffer) and
// writes binding 4. Tiles: 64 × 64 results per workgroup of 16 × 16 threads, 4 × 4 each, over
// K in steps of 16.
//
// prm words: 0 M, 1 N, 2 K, 3 mode-specific flags, then the convolution geometry:
// 4 images, 5 C, 6 H, 7 W, 8 Co, 9 OH, 10 OW, 11 kh, 12 kw, 13 sh, 14 sw, 15 ph, 16 pw,
// 17 dh, 18 dw, 19 groups, 20 K per split (grad weight).
// Flags: matmul bit 0 = trans_a, bit 1 = trans_b; conv forward bit 0 = has bias.

@group(0) @binding(0) var<storage, read> prm: array<u32>;
@group(0) @binding(1) var<storage, read> in0: array<f32>;
@group(0) @binding(2) var<storage, read> in1: array<f32>;
@group(0) @binding(3) var<storage, read> in2: array<f32>;
@group(0) @binding(4) var<storage, read_write> res: array<f32>;

const TILE: u32 = 64u;
const KT: u32 = 16u;

var<workgroup> tile_a: array<f32, 1024>; // [KT][TILE]
var<workgroup> tile_b: array<f32, 1024>; // [KT][TILE]

struct Geo {
    images: u32, c: u32, h: u32, w: u32, co: u32, oh: u32, ow: u32,
    kh: u32, kw: u32, sh: u32, sw: u32, ph: u32, pw: u32, dh: u32, dw: u32, groups: u32,
}

fn geo() -> Geo {
    return Geo(prm[4], prm[5], prm[6], prm[7], prm[8], prm[9], prm[10], prm[11], prm[12],
        prm[13], prm[14], prm[15], prm[16], prm[17], prm[18], prm[19]);
}

// x[img, ch, ih, iw] with zero padding outside the image.
fn x_at(g: Geo, img: u32, ch: u32, ih: i32, iw: i32) -> f32 {
    if (ih < 0 || iw < 0 || ih >= i32(g.h) || iw >= i32(g.w)) {
        return 0.0;
    }
    return in0[((img * g.c + ch) * g.h + u32(ih)) * g.w + u32(iw)];
}

// A filter tap index `(channel · kh + r) · kw + s` as (channel, r, s).
fn tap(g: Geo, k: u32) -> vec3<u32> {
    let khkw = g.kh * g.kw;
    let ch = k / khkw;
    let rs = k - ch * khkw;
    let r = rs / g.kw;
    return vec3<u32>(ch, r, rs - r * g.kw);
}

// The weight gradient's sum index `k` of split `z / groups` as (image, output position).
fn image_pixel(g: Geo, z: u32, k: u32) -> vec2<u32> {
    let ohow = g.oh * g.ow;
    let kg = (z / g.groups) * prm[20] + k;
    let img = kg / ohow;
    return vec2<u32>(img, kg - img * ohow);
}

// x at output position `p` (row-major over OH × OW) seen through tap `t` of group `grp`:
// x[img, grp·Cg + ci, oh·sh - ph + r·dh, ow·sw - pw + s·dw], 0 in the padding.
fn x_window(g: Geo, img: u32, grp: u32, p: u32, t: vec3<u32>) -> f32 {
    let oh = p / g.ow;
    let ow = p - oh * g.ow;
    let ih = i32(oh * g.sh + t.y * g.dh) - i32(g.ph);
    let iw = i32(ow * g.sw + t.z * g.dw) - i32(g.pw);
    return x_at(g, img, grp * (g.c / g.groups) + t.x, ih, iw);
}

fn load_a(mode: u32, g: Geo, z: u32, m: u32, k: u32) -> f32 {
    let mm = prm[0];
    let kk = prm[2];
    let grp = z % g.groups;
    switch mode {
        case 0u: {
            if ((prm[3] & 1u) != 0u) {
                return in0[z * mm * kk + k * mm + m];
            }
            return in0[z * mm * kk + m * kk + k];
        }
        case 1u: {
            return in1[(grp * mm + m) * kk + k];
        }
        case 2u: {
            // A(ci, (co, r, s)) = w[g·Co/g + co, ci, r, s]
            let khkw = g.kh * g.kw;
            let co = k / khkw;
            return in1[((grp * (g.co / g.groups) + co) * mm + m) * khkw + (k - co * khkw)];
        }
        default: {
            // A(co, (img, p)) = dy[img, g·Co/g + co, p]
            let ip = image_pixel(g, z, k);
            return in1[(ip.x * g.co + grp * mm + m) * g.oh * g.ow + ip.y];
        }
    }
}

fn load_b(mode: u32, g: Geo, z: u32, k: u32, n: u32) -> f32 {
    let kk = prm[2];
    let nn = prm[1];
    let grp = z % g.groups;
    switch mode {
        case 0u: {
            if ((prm[3] & 2u) != 0u) {
                return in1[z * kk * nn + n * kk + k];
            }
            return in1[z * kk * nn + k * nn + n];
        }
        case 1u: {
            // B((ci, r, s), p) = x's window at output position p
            return x_window(g, z / g.groups, grp, n, tap(g, k));
        }
        case 2u: {
            // B((co, r, s), (ih, iw)) = dy[img, g·Co/g + co, oh, ow] where ih = oh·sh - ph + r·dh
            let t = tap(g, k);
            let ih = n / g.w;
            let iw = n - ih * g.w;
            let th = i32(ih + g.ph) - i32(t.y * g.dh);
            let tw = i32(iw + g.pw) - i32(t.z * g.dw);
            if (th < 0 || tw < 0) {
                return 0.0;
            }
            let oh = u32(th) / g.sh;
            let ow = u32(tw) / g.sw;
            if (oh * g.sh != u32(th) || ow * g.sw != u32(tw) || oh >= g.oh || ow >= g.ow) {
                return 0.0;
            }
            let img = z / g.groups;
            return in0[((img * g.co + grp * (g.co / g.groups) + t.x) * g.oh + oh) * g.ow + ow];
        }
        default: {
            // B((img, p), (ci, r, s)) = x's window at output position p of image img
            let ip = image_pixel(g, z, k);
            return x_window(g, ip.x, grp, ip.y, tap(g, n));
        }
    }
}

fn store(mode: u32, g: Geo, z: u32, m: u32, n: u32, v: f32) {
    let mm = prm[0];
    let nn = prm[1];
    switch mode {
        case 0u: {
            res[(z * mm + m) * nn + n] = v;
        }
        case 1u: {
            let grp = z % g.groups;
            let img = z / g.groups;
            let co = grp * mm + m;
            var b = 0.0;
            if ((prm[3] & 1u) != 0u) {
                b = in2[co];
            }
            res[(img * g.co + co) * nn + n] = v + b;
        }
        case 2u: {
            let grp = z % g.groups;
            let img = z / g.groups;
            res[(img * g.c + grp * mm + m) * nn + n] = v;
        }
        default: {
            // One split's partial sums: [split, Co, Cg·kh·kw].
            let grp = z % g.groups;
            let split = z / g.groups;
            res[(split * g.co + grp * mm + m) * nn + n] = v;
        }
    }
}

fn gemm(mode: u32, lid: vec3<u32>, wid: vec3<u32>) {
    let mm = prm[0];
    let nn = prm[1];
    var kk = prm[2];
    let g = geo();
    let z = wid.z;
    if (mode == 3u) {
        // The last split may be short.
        let split = z / g.groups;
        let total = g.images * g.oh * g.ow;
        kk = min(prm[20], total - min(total, split * prm[20]));
    }
    let m0 = wid.y * TILE;
    let n0 = wid.x * TILE;
    let tx = lid.x; // column group: n = n0 + tx + 16·j
    let ty = lid.y; // row group: m = m0 + ty + 16·i
    let t = ty * 16u + tx;
    // Row i of this thread's 4 × 4 block is acc[i]; vectors, not an indexed array, so that
    // the accumulators stay in registers.
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var k0 = 0u; k0 < kk; k0 += KT) {
        // 1024 elements of each tile, 4 per thread.
        for (var q = 0u; q < 4u; q++) {
            let e = t + q * 256u;
            let kr = e / TILE;
            let c = e - kr * TILE;
            let k = k0 + kr;
            var va = 0.0;
            if (k < kk && m0 + c < mm) {
                va = load_a(mode, g, z, m0 + c, k);
            }
            tile_a[kr * TILE + c] = va;
            var vb = 0.0;
            if (k < kk && n0 + c < nn) {
                vb = load_b(mode, g, z, k, n0 + c);
            }
            tile_b[kr * TILE + c] = vb;
        }
        workgroupBarrier();
        for (var kr = 0u; kr < KT; kr++) {
            let ra = kr * TILE + ty;
            let rb = kr * TILE + tx;
            let a = vec4<f32>(tile_a[ra], tile_a[ra + 16u], tile_a[ra + 32u], tile_a[ra + 48u]);
            let b = vec4<f32>(tile_b[rb], tile_b[rb + 16u], tile_b[rb + 32u], tile_b[rb + 48u]);
            acc0 = fma(vec4<f32>(a.x), b, acc0);
            acc1 = fma(vec4<f32>(a.y), b, acc1);
            acc2 = fma(vec4<f32>(a.z), b, acc2);
            acc3 = fma(vec4<f32>(a.w), b, acc3);
        }
        workgroupBarrier();
    }
    store_row(mode, g, z, m0 + ty, n0 + tx, acc0);
    store_row(mode, g, z, m0 + ty + 16u, n0 + tx, acc1);
    store_row(mode, g, z, m0 + ty + 32u, n0 + tx, acc2);
    store_row(mode, g, z, m0 + ty + 48u, n0 + tx, acc3);
}

// Stores one accumulator row: results (m, n + 16·j) for j = 0..3, inside the result only.
fn store_row(mode: u32, g: Geo, z: u32, m: u32, n: u32, v: vec4<f32>) {
    if (m >= prm[0]) {
        return;
    }
    let nn = prm[1];
    if (n < nn) {
        store(mode, g, z, m, n, v.x);
    }
    if (n + 16u < nn) {
        store(mode, g, z, m, n + 16u, v.y);
    }
    if (n + 32u < nn) {
        store(mode, g, z, m, n + 32u, v.z);
    }
    if (n + 48u < nn) {
        store(mode, g, z, m, n + 48u, v.w);
    }
}

@compute @workgroup_size(16, 16)
fn matmul(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    gemm(0u, lid, wid);
}

@compute @workgroup_size(16, 16)
fn conv_forward(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    gemm(1u, lid, wid);
}

@compute @workgroup_size(16, 16)
fn conv_grad_input(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    gemm(2u, lid, wid);
}

@compute @workgroup_size(16, 16)
fn conv_grad_weight(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    gemm(3u, lid, wid);
}

// Sums the grad-weight splits: prm = [n, splits]; res[i] = Σ_s in0[s·n + i].
@compute @workgroup_size(256)
fn sum_splits(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = prm[0];
    let splits = prm[1];
    for (var i = gid.x; i < n; i += nwg.x * WG) {
        var acc = 0.0;
        for (var s = 0u; s < splits; s++) {
            acc += in0[s * n + i];
        }
        res[i] = acc;
    }
}
