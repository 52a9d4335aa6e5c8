// The unreduced float losses (`backend::wgpu::loss`): sigmoid focal, BCE with logits, L1 /
// smooth L1 per element, and the IoU family per box pair, forward and gradient. Formulas and
// gradient choices are the CPU reference's (`backend::cpu::loss`). Cross-entropy has i32
// labels and lives in loss_ce.wgsl.
//
// Binding layout (every kernel, see kernels/README.md): 0 = prm (u32 words, read),
// forward: 1 = a, 2 = b (read), 3 = out; gradient: 1 = a, 2 = b, 3 = dy (read), 4 = dx.
// Grid-stride loops: one thread per element (or box), in steps of the whole dispatch.
// Everything is recomputed from the inputs, so the gradient needs no saved forward.

@group(0) @binding(0) var<storage, read> prm: array<u32>;
@group(0) @binding(1) var<storage, read> a_in: array<f32>;
@group(0) @binding(2) var<storage, read> b_in: array<f32>;
// Forward entries write binding 3; gradient entries read dy there and write binding 4.
@group(0) @binding(3) var<storage, read_write> loss_out: array<f32>;
@group(0) @binding(3) var<storage, read> dy_in: array<f32>;
@group(0) @binding(4) var<storage, read_write> dx_out: array<f32>;

// ---- logistic losses ----

// σ(x), 1 - σ(x) and softplus's ln(1 + e^{-|x|}) from one exp: the complementary sigmoid q is
// computed directly, not as 1 - p, so 1 - p_t keeps its precision where p is near 1.
struct Logistic {
    p: f32,
    q: f32,
    softplus: f32,
}

fn logistic(x: f32) -> Logistic {
    let e = exp_p(-abs(x));
    let r = 1.0 / (1.0 + e);
    let s = e * r;
    var l: Logistic;
    l.p = select(s, r, x >= 0.0);
    l.q = select(r, s, x >= 0.0);
    l.softplus = log1p_unit(e);
    return l;
}

// max(x, 0) - x t + ln(1 + e^{-|x|}).
fn bce(x: f32, t: f32, l: Logistic) -> f32 {
    return max(x, 0.0) - x * t + l.softplus;
}

// m^g for m in [0, 1]: exact for the usual g (0, 1, 2), exp(g ln m) otherwise (0 at m = 0
// for g > 0, as powf). WGSL's pow is as loose as its exp and log.
fn pow_unit(m: f32, g: f32) -> f32 {
    if (g == 0.0) {
        return 1.0;
    }
    if (g == 1.0) {
        return m;
    }
    if (g == 2.0) {
        return m * m;
    }
    return exp_p(g * log_p(m));
}

// prm = [n, gamma, w1, w0] (f32 bits): α_t = w1 t + w0 (1 - t); the host passes (1, 1) for
// α < 0, which turns the weighting off.
@compute @workgroup_size(256)
fn focal_fwd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = prm[0];
    let g = bitcast<f32>(prm[1]);
    let w1 = bitcast<f32>(prm[2]);
    let w0 = bitcast<f32>(prm[3]);
    for (var i = gid.x; i < n; i += nwg.x * WG) {
        let x = a_in[i];
        let t = b_in[i];
        let l = logistic(x);
        // m = 1 - p_t = p (1 - t) + q t.
        let m = l.p * (1.0 - t) + l.q * t;
        loss_out[i] = (w1 * t + w0 * (1.0 - t)) * bce(x, t, l) * pow_unit(m, g);
    }
}

// prm as focal_fwd. dx = dy α_t ((p - t) m^γ + bce γ m^(γ-1) dm), dm = -p q (2t - 1).
@compute @workgroup_size(256)
fn focal_bwd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = prm[0];
    let g = bitcast<f32>(prm[1]);
    let w1 = bitcast<f32>(prm[2]);
    let w0 = bitcast<f32>(prm[3]);
    for (var i = gid.x; i < n; i += nwg.x * WG) {
        let x = a_in[i];
        let t = b_in[i];
        let l = logistic(x);
        let m = l.p * (1.0 - t) + l.q * t;
        let dm = -(l.p * l.q) * (2.0 * t - 1.0);
        // γ = 0 zeroes the second term (the CPU's m^(γ-1) = 0 there; 0 · m^-1 would be NaN
        // at m = 0).
        var second = 0.0;
        if (g != 0.0) {
            second = bce(x, t, l) * g * pow_unit(m, g - 1.0) * dm;
        }
        // p - t = p (1 - t) - q t, without cancellation near p = 1.
        let grad = (l.p * (1.0 - t) - l.q * t) * pow_unit(m, g) + second;
        dx_out[i] = (w1 * t + w0 * (1.0 - t)) * grad * dy_in[i];
    }
}

// prm = [n].
@compute @workgroup_size(256)
fn bce_fwd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = prm[0];
    for (var i = gid.x; i < n; i += nwg.x * WG) {
        let x = a_in[i];
        loss_out[i] = bce(x, b_in[i], logistic(x));
    }
}

// prm = [n]. dx = (σ(x) - t) dy.
@compute @workgroup_size(256)
fn bce_bwd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = prm[0];
    for (var i = gid.x; i < n; i += nwg.x * WG) {
        let t = b_in[i];
        let l = logistic(a_in[i]);
        dx_out[i] = (l.p * (1.0 - t) - l.q * t) * dy_in[i];
    }
}

// ---- L1 and smooth L1 ----

// prm = [n, beta]: 0.5 d²/β if |d| < β else |d| - β/2. L1 is β = 0 (|d| < 0 never holds).
@compute @workgroup_size(256)
fn smooth_l1_fwd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = prm[0];
    let beta = bitcast<f32>(prm[1]);
    for (var i = gid.x; i < n; i += nwg.x * WG) {
        let d = abs(a_in[i] - b_in[i]);
        var v = d - 0.5 * beta;
        if (d < beta) {
            v = 0.5 * d * d / beta;
        }
        loss_out[i] = v;
    }
}

// prm = [n, beta, sign]: dx = sign · dy · (|d| < β ? d/β : sign(d)), sign = +1 w.r.t. a, -1
// w.r.t. b; sign(0) = 0, so L1's gradient at d = 0 is 0, as torch.
@compute @workgroup_size(256)
fn smooth_l1_bwd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = prm[0];
    let beta = bitcast<f32>(prm[1]);
    let s = bitcast<f32>(prm[2]);
    for (var i = gid.x; i < n; i += nwg.x * WG) {
        let d = a_in[i] - b_in[i];
        var g = sign(d);
        if (abs(d) < beta) {
            g = d / beta;
        }
        dx_out[i] = s * g * dy_in[i];
    }
}

// ---- IoU family on xyxy box pairs ----

// atan to ~1e-7 (Cephes atanf): WGSL's atan carries no precision guarantee worth the name.
fn atan_p(v: f32) -> f32 {
    var x = abs(v);
    var y = 0.0;
    if (x > 2.414213562373095) {
        y = 1.5707963267948966;
        x = -1.0 / x;
    } else if (x > 0.4142135623730950) {
        y = 0.7853981633974483;
        x = (x - 1.0) / (x + 1.0);
    }
    let z = x * x;
    y += (((8.05374449538e-2 * z - 1.38776856032e-1) * z + 1.99777106478e-1) * z
        - 3.33329491539e-1) * z * x + x;
    return select(y, -y, v < 0.0);
}

// max(a, b) and how its gradient splits between a and b (half each on ties, as autograd).
fn max_split(a: f32, b: f32) -> vec3<f32> {
    if (a > b) {
        return vec3<f32>(a, 1.0, 0.0);
    }
    if (a < b) {
        return vec3<f32>(b, 0.0, 1.0);
    }
    return vec3<f32>(a, 0.5, 0.5);
}

fn min_split(a: f32, b: f32) -> vec3<f32> {
    if (a < b) {
        return vec3<f32>(a, 1.0, 0.0);
    }
    if (a > b) {
        return vec3<f32>(b, 0.0, 1.0);
    }
    return vec3<f32>(a, 0.5, 0.5);
}

struct IouPair {
    loss: f32,
    dp: vec4<f32>,
    dt: vec4<f32>,
}

// The loss of one pair and, with upstream g, its gradients w.r.t. both boxes: the CPU's
// iou_pair step for step (kind 0 IoU, 1 GIoU, 2 DIoU, 3 CIoU). The forward passes g = 0 and
// keeps the loss; the gradient work it does then is a few dozen flops per box.
fn iou_pair(p: vec4<f32>, t: vec4<f32>, kind: u32, eps: f32, g: f32) -> IouPair {
    let xk1 = max_split(p.x, t.x);
    let yk1 = max_split(p.y, t.y);
    let xk2 = min_split(p.z, t.z);
    let yk2 = min_split(p.w, t.w);
    let mask = yk2.x > yk1.x && xk2.x > xk1.x;
    var inter = 0.0;
    if (mask) {
        inter = (xk2.x - xk1.x) * (yk2.x - yk1.x);
    }
    let a1 = (p.z - p.x) * (p.w - p.y);
    let a2 = (t.z - t.x) * (t.w - t.y);
    let uni = a1 + a2 - inter;
    let iou = inter / (uni + eps);
    let xc1 = min_split(p.x, t.x);
    let yc1 = min_split(p.y, t.y);
    let xc2 = max_split(p.z, t.z);
    let yc2 = max_split(p.w, t.w);
    let wc = xc2.x - xc1.x;
    let hc = yc2.x - yc1.x;
    var dp = vec4<f32>(0.0);
    var dt = vec4<f32>(0.0);
    // Adjoints of the enclosing box's edges (x1, y1, x2, y2), filled per kind.
    var dc = vec4<f32>(0.0);
    let diou = -g;
    var dunion = 0.0;
    var loss = 1.0 - iou;
    if (kind == 1u) {
        let ac = wc * hc;
        let term = (ac - uni) / (ac + eps);
        let dac = g * (1.0 / (ac + eps) - (ac - uni) / ((ac + eps) * (ac + eps)));
        dunion -= g / (ac + eps);
        dc += vec4<f32>(-dac * hc, -dac * wc, dac * hc, dac * wc);
        loss = 1.0 - (iou - term);
    } else if (kind >= 2u) {
        let diag = wc * wc + hc * hc + eps;
        let xp = (p.z + p.x) / 2.0;
        let yp = (p.w + p.y) / 2.0;
        let xg = (t.x + t.z) / 2.0;
        let yg = (t.y + t.w) / 2.0;
        let cd = (xp - xg) * (xp - xg) + (yp - yg) * (yp - yg);
        let dcd = g / diag;
        let ddiag = -g * cd / (diag * diag);
        dc += vec4<f32>(-ddiag * 2.0 * wc, -ddiag * 2.0 * hc, ddiag * 2.0 * wc, ddiag * 2.0 * hc);
        let dxp = dcd * 2.0 * (xp - xg);
        let dyp = dcd * 2.0 * (yp - yg);
        let dctr = vec4<f32>(dxp * 0.5, dyp * 0.5, dxp * 0.5, dyp * 0.5);
        dp += dctr;
        dt -= dctr;
        loss = 1.0 - iou + cd / diag;
        if (kind == 3u) {
            let wp = p.z - p.x;
            let hp = p.w - p.y;
            let wg = t.z - t.x;
            let hg = t.w - t.y;
            let k = 0.40528473456935109; // 4 / π²
            let delta = atan_p(wg / hg) - atan_p(wp / hp);
            let v = k * delta * delta;
            // α is a constant in the gradient, as in torchvision (computed under no_grad).
            let alpha = v / (1.0 - iou + v + eps);
            loss += alpha * v;
            let ddelta = g * alpha * k * 2.0 * delta;
            let rp = wp / hp;
            let rg = wg / hg;
            let sp = 1.0 / (1.0 + rp * rp);
            let sg = 1.0 / (1.0 + rg * rg);
            let dwp = -ddelta * sp / hp;
            let dhp = ddelta * sp * wp / (hp * hp);
            let dwg = ddelta * sg / hg;
            let dhg = -ddelta * sg * wg / (hg * hg);
            dp += vec4<f32>(-dwp, -dhp, dwp, dhp);
            dt += vec4<f32>(-dwg, -dhg, dwg, dhg);
        }
    }
    // iou = inter / (union + eps); union = a1 + a2 - inter.
    let dinter_direct = diou / (uni + eps);
    dunion += -diou * inter / ((uni + eps) * (uni + eps));
    let dinter = dinter_direct - dunion;
    let hp1 = p.w - p.y;
    let wp1 = p.z - p.x;
    let ht1 = t.w - t.y;
    let wt1 = t.z - t.x;
    dp += vec4<f32>(-dunion * hp1, -dunion * wp1, dunion * hp1, dunion * wp1);
    dt += vec4<f32>(-dunion * ht1, -dunion * wt1, dunion * ht1, dunion * wt1);
    if (mask) {
        let dxk2 = dinter * (yk2.x - yk1.x);
        let dyk2 = dinter * (xk2.x - xk1.x);
        let dk = vec4<f32>(-dxk2, -dyk2, dxk2, dyk2);
        dp += dk * vec4<f32>(xk1.y, yk1.y, xk2.y, yk2.y);
        dt += dk * vec4<f32>(xk1.z, yk1.z, xk2.z, yk2.z);
    }
    dp += dc * vec4<f32>(xc1.y, yc1.y, xc2.y, yc2.y);
    dt += dc * vec4<f32>(xc1.z, yc1.z, xc2.z, yc2.z);
    var r: IouPair;
    r.loss = loss;
    r.dp = dp;
    r.dt = dt;
    return r;
}

fn box_a(i: u32) -> vec4<f32> {
    return vec4<f32>(a_in[4u * i], a_in[4u * i + 1u], a_in[4u * i + 2u], a_in[4u * i + 3u]);
}

fn box_b(i: u32) -> vec4<f32> {
    return vec4<f32>(b_in[4u * i], b_in[4u * i + 1u], b_in[4u * i + 2u], b_in[4u * i + 3u]);
}

// prm = [n boxes, kind, eps]: pred = binding 1, target = binding 2, both [n, 4].
@compute @workgroup_size(256)
fn iou_fwd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = prm[0];
    let kind = prm[1];
    let eps = bitcast<f32>(prm[2]);
    for (var i = gid.x; i < n; i += nwg.x * WG) {
        loss_out[i] = iou_pair(box_a(i), box_b(i), kind, eps, 0.0).loss;
    }
}

// prm = [n boxes, kind, eps, wrt]: the gradient [n, 4] w.r.t. pred (wrt 0) or target (1).
@compute @workgroup_size(256)
fn iou_bwd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = prm[0];
    let kind = prm[1];
    let eps = bitcast<f32>(prm[2]);
    let wrt = prm[3];
    for (var i = gid.x; i < n; i += nwg.x * WG) {
        let r = iou_pair(box_a(i), box_b(i), kind, eps, dy_in[i]);
        let d = select(r.dp, r.dt, wrt == 1u);
        dx_out[4u * i] = d.x;
        dx_out[4u * i + 1u] = d.y;
        dx_out[4u * i + 2u] = d.z;
        dx_out[4u * i + 3u] = d.w;
    }
}
