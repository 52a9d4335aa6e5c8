// Prepended to every module of kernels/wgsl/ (see `backend::wgpu::context::Module::source`).
// WGSL's exp and log may be far less precise than f32 allows (the spec permits 3 + 2|x| ulp for
// exp and 2^-21 absolute error for log near 1; lavapipe is that loose), so the kernels use these
// Cephes polynomials, within 3 ulp like `backend::cpu::fastmath`. WGSL lets implementations
// flush subnormals to zero; results below f32's smallest normal may be 0 here.

const WG: u32 = 256u;
const LN2_HI: f32 = 0.693359375;
const LN2_LO: f32 = -2.12194440e-4;

// 2^n for n in [-126, 127], built from its bits.
fn pow2i(n: i32) -> f32 {
    return bitcast<f32>(u32(n + 127) << 23u);
}

// e^x to ~2 ulp; +inf above ln(f32::MAX), 0 below ln(f32::MIN_POSITIVE), NaN stays NaN.
fn exp_p(x: f32) -> f32 {
    if (x != x) {
        return x;
    }
    if (x > 88.72283) {
        return bitcast<f32>(0x7f800000u);
    }
    if (x < -87.33655) {
        return 0.0;
    }
    let n = round(x * 1.44269504);
    let r = x - n * LN2_HI - n * LN2_LO;
    var p = 1.9875691e-4;
    p = p * r + 1.3981999e-3;
    p = p * r + 8.3334520e-3;
    p = p * r + 4.1665796e-2;
    p = p * r + 1.6666665e-1;
    p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    let k = i32(n);
    if (k > 127) {
        return y * 2.0 * pow2i(k - 1);
    }
    if (k < -126) {
        return y * 0.5 * pow2i(k + 1);
    }
    return y * pow2i(k);
}

// ln(1 + f) - f for f in [√½ - 1, √2 - 1] (the shared polynomial of log_p and log1p_p).
fn log_poly(f: f32) -> f32 {
    let z = f * f;
    var y = 7.0376836e-2;
    y = y * f - 1.1514610e-1;
    y = y * f + 1.1676999e-1;
    y = y * f - 1.2420141e-1;
    y = y * f + 1.4249323e-1;
    y = y * f - 1.6668058e-1;
    y = y * f + 2.0000715e-1;
    y = y * f - 2.4999994e-1;
    y = y * f + 3.3333331e-1;
    return y * f * z - 0.5 * z;
}

// ln x to ~2 ulp: -inf at 0, NaN below, +inf at +inf.
fn log_p(x: f32) -> f32 {
    if (x != x || x < 0.0) {
        return bitcast<f32>(0x7fc00000u);
    }
    if (x == 0.0) {
        return bitcast<f32>(0xff800000u);
    }
    if (x > 3.4028235e38) {
        return x;
    }
    var bits = bitcast<u32>(x);
    var e = i32((bits >> 23u) & 0xffu);
    if (e == 0) {
        // Subnormal (where the device keeps them): scale into the normal range first.
        bits = bitcast<u32>(x * 8388608.0);
        e = i32((bits >> 23u) & 0xffu) - 23;
    }
    // x = m · 2^k with m in [√½, √2).
    var m = bitcast<f32>((bits & 0x007fffffu) | 0x3f800000u);
    var k = e - 127;
    if (m > 1.41421356) {
        m = 0.5 * m;
        k += 1;
    }
    let f = m - 1.0;
    let fk = f32(k);
    return f + (log_poly(f) + fk * LN2_LO) + fk * LN2_HI;
}

// ln(1 + e) for 0 <= e <= 1 (the softplus term ln(1 + exp(-|x|))), as cpu::fastmath's.
fn log1p_unit(e: f32) -> f32 {
    let u = 1.0 + e;
    let big = u > 1.41421356;
    let f = select(u - 1.0, 0.5 * u - 1.0, big);
    let k = select(0.0, 1.0, big);
    let ln_u = f + (log_poly(f) + k * LN2_LO) + k * LN2_HI;
    // u - 1 is exact; e / (u - 1) corrects for the rounding of 1 + e (Goldberg's log1p).
    let d = u - 1.0;
    return select(ln_u * (e / d), e, d == 0.0);
}

// The numerically stable logistic function (as cpu::elementwise::sigmoid).
fn sigmoid_p(x: f32) -> f32 {
    if (x >= 0.0) {
        return 1.0 / (1.0 + exp_p(-x));
    }
    let e = exp_p(x);
    return e / (1.0 + e);
}
