// Fill, strided copies and casts on 32-bit elements (f32 or i32 bits alike), broadcasting
// binaries, unary maps and row sums. Binding layout (every kernel, see kernels/README.md):
// 0 = prm (u32 words, read), 1.. = inputs (read), last = output (read_write).
// Grid-stride loops: `i` runs from the global id in steps of the whole dispatch.

@group(0) @binding(0) var<storage, read> prm: array<u32>;

// Decodes index `i` of a strided index space (prm[base..]: rank, dims[6], a[6], b[6],
// innermost first) into its two offsets, as `backend::strided::KernelIndex::offsets`.
fn strided_offsets(base: u32, i: u32) -> vec2<u32> {
    let rank = prm[base];
    var rem = i;
    var oa = 0u;
    var ob = 0u;
    for (var k = 0u; k < 6u; k++) {
        let sa = prm[base + 7u + k];
        let sb = prm[base + 13u + k];
        if (k + 1u == rank || k + 1u == 6u) {
            oa += rem * sa;
            ob += rem * sb;
            break;
        }
        let d = prm[base + 1u + k];
        let q = rem / d;
        let r = rem - q * d;
        oa += r * sa;
        ob += r * sb;
        rem = q;
    }
    return vec2<u32>(oa, ob);
}

// ---- 32-bit copies: prm = [n, value bits] / [n, src_base, dst_base, index space..] ----

@group(0) @binding(1) var<storage, read_write> bits_out: array<u32>;

@compute @workgroup_size(256)
fn fill(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = prm[0];
    for (var i = gid.x; i < n; i += nwg.x * WG) {
        bits_out[i] = prm[1];
    }
}

@group(0) @binding(1) var<storage, read> bits_in: array<u32>;
@group(0) @binding(2) var<storage, read_write> bits_dst: array<u32>;

@compute @workgroup_size(256)
fn strided_copy(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = prm[0];
    for (var i = gid.x; i < n; i += nwg.x * WG) {
        let o = strided_offsets(3u, i);
        bits_dst[prm[2] + o.y] = bits_in[prm[1] + o.x];
    }
}

// prm = [n]; f32 → i32 rounds toward zero and saturates (Rust's `as`; NaN → 0).
@compute @workgroup_size(256)
fn cast_f32_i32(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = prm[0];
    for (var i = gid.x; i < n; i += nwg.x * WG) {
        let x = bitcast<f32>(bits_in[i]);
        var v = 0i;
        if (x == x) {
            if (x >= 2147483647.0) {
                v = 2147483647i;
            } else if (x <= -2147483648.0) {
                v = -2147483647i - 1i;
            } else {
                v = i32(x);
            }
        }
        bits_dst[i] = bitcast<u32>(v);
    }
}

@compute @workgroup_size(256)
fn cast_i32_f32(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = prm[0];
    for (var i = gid.x; i < n; i += nwg.x * WG) {
        bits_dst[i] = bitcast<u32>(f32(bitcast<i32>(bits_in[i])));
    }
}

// ---- f32 maps ----

@group(0) @binding(1) var<storage, read> x_in: array<f32>;
@group(0) @binding(2) var<storage, read> y_in: array<f32>;
@group(0) @binding(3) var<storage, read_write> f_out: array<f32>;

// prm = [n, op, c0 bits, c1 bits]; x = binding 1, dy = binding 2 (gradient ops only).
// Op codes as `backend::wgpu::tensor::unary_code`.
@compute @workgroup_size(256)
fn unary(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = prm[0];
    let op = prm[1];
    let c0 = bitcast<f32>(prm[2]);
    let c1 = bitcast<f32>(prm[3]);
    for (var i = gid.x; i < n; i += nwg.x * WG) {
        let x = x_in[i];
        var v = 0.0;
        switch op {
            case 0u: { v = select(0.0, x, x > 0.0); }
            case 1u: { v = sigmoid_p(x); }
            case 2u: { v = exp_p(x); }
            case 3u: { v = log_p(x); }
            case 4u: { v = x * c0; }
            case 5u: { v = x + c0; }
            case 6u: { v = min(max(x, c0), c1); }
            case 7u: { v = select(0.0, y_in[i], x > 0.0); }
            case 8u: { v = y_in[i] * x * (1.0 - x); }
            case 9u: { v = y_in[i] * x; }
            case 10u: { v = y_in[i] / x; }
            default: { v = select(0.0, y_in[i], x >= c0 && x <= c1); }
        }
        f_out[i] = v;
    }
}

// prm = [n, op, index space..]: out[i] = a[oa] op b[ob] (op: 0 add, 1 sub, 2 mul, 3 div).
@compute @workgroup_size(256)
fn binary(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = prm[0];
    let op = prm[1];
    for (var i = gid.x; i < n; i += nwg.x * WG) {
        let o = strided_offsets(2u, i);
        let a = x_in[o.x];
        let b = y_in[o.y];
        var v = 0.0;
        switch op {
            case 0u: { v = a + b; }
            case 1u: { v = a - b; }
            case 2u: { v = a * b; }
            default: { v = a / b; }
        }
        f_out[i] = v;
    }
}

// ---- row sums: prm = [segments, len, chunk, nchunks]; segment r sums elements
// [c·chunk, min((c + 1)·chunk, len)) of row r / nchunks, c = r % nchunks. One workgroup per
// segment (grid-stride over segments). ----

@group(0) @binding(2) var<storage, read_write> sum_out: array<f32>;

var<workgroup> partial: array<f32, 256>;

@compute @workgroup_size(256)
fn row_sum(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let segs = prm[0];
    let len = prm[1];
    let chunk = prm[2];
    let nchunks = prm[3];
    for (var r = wid.x; r < segs; r += nwg.x) {
        let row = r / nchunks;
        let start = (r - row * nchunks) * chunk;
        let end = min(start + chunk, len);
        var acc = 0.0;
        for (var j = start + lid.x; j < end; j += WG) {
            acc += x_in[row * len + j];
        }
        partial[lid.x] = acc;
        workgroupBarrier();
        for (var s = WG / 2u; s > 0u; s >>= 1u) {
            if (lid.x < s) {
                partial[lid.x] += partial[lid.x + s];
            }
            workgroupBarrier();
        }
        if (lid.x == 0u) {
            sum_out[r] = partial[0];
        }
        workgroupBarrier();
    }
}
