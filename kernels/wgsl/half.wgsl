// Half-precision storage (backend::wgpu::half): f16 and bf16 tensors are stored two to a u32
// word, element 2j in the low half of word j. The conversions are integer operations on the
// bits, transcribed from the `half` crate the CPU backend uses (round to nearest even, NaNs
// kept and quieted, overflow to infinity, f16 subnormals exact), so they need no SHADER_F16 and
// give the CPU's bits on every adapter, whatever it does with subnormal floats.
// prm = [n elements, kind (0: f16, 1: bf16)]; binding 1 is read as bits, binding 2 written.

@group(0) @binding(0) var<storage, read> prm: array<u32>;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<u32>;

fn f32_to_f16(x: u32) -> u32 {
    let sign = x & 0x80000000u;
    let exp = x & 0x7F800000u;
    let man = x & 0x007FFFFFu;
    let half_sign = sign >> 16u;
    if (exp == 0x7F800000u) {
        var nan_bit = 0u;
        if (man != 0u) {
            nan_bit = 0x0200u;
        }
        return half_sign | 0x7C00u | nan_bit | (man >> 13u);
    }
    let half_exp = i32(exp >> 23u) - 127 + 15;
    if (half_exp >= 0x1F) {
        return half_sign | 0x7C00u;
    }
    if (half_exp <= 0) {
        if (14 - half_exp > 24) {
            return half_sign;
        }
        let m = man | 0x00800000u;
        var half_man = m >> u32(14 - half_exp);
        let round_bit = 1u << u32(13 - half_exp);
        if ((m & round_bit) != 0u && (m & (3u * round_bit - 1u)) != 0u) {
            half_man += 1u;
        }
        return half_sign | half_man;
    }
    let bits = half_sign | (u32(half_exp) << 10u) | (man >> 13u);
    let round_bit = 0x1000u;
    if ((man & round_bit) != 0u && (man & (3u * round_bit - 1u)) != 0u) {
        return bits + 1u;
    }
    return bits;
}

fn f16_to_f32(h: u32) -> u32 {
    if ((h & 0x7FFFu) == 0u) {
        return h << 16u;
    }
    let sign = (h & 0x8000u) << 16u;
    let half_exp = h & 0x7C00u;
    let half_man = h & 0x03FFu;
    if (half_exp == 0x7C00u) {
        if (half_man == 0u) {
            return sign | 0x7F800000u;
        }
        return sign | 0x7FC00000u | (half_man << 13u);
    }
    if (half_exp == 0u) {
        // A subnormal: normalise (leading zeros of the 16-bit value, less 6).
        let e = countLeadingZeros(half_man) - 22u;
        return sign | ((112u - e) << 23u) | ((half_man << (14u + e)) & 0x007FFFFFu);
    }
    return sign | (((half_exp >> 10u) + 112u) << 23u) | (half_man << 13u);
}

fn f32_to_bf16(x: u32) -> u32 {
    if ((x & 0x7FFFFFFFu) > 0x7F800000u) {
        return (x >> 16u) | 0x0040u;
    }
    let round_bit = 0x8000u;
    if ((x & round_bit) != 0u && (x & (3u * round_bit - 1u)) != 0u) {
        return (x >> 16u) + 1u;
    }
    return x >> 16u;
}

fn bf16_to_f32(h: u32) -> u32 {
    if ((h & 0x7FFFu) > 0x7F80u) {
        return (h | 0x0040u) << 16u;
    }
    return h << 16u;
}

fn narrow(x: u32) -> u32 {
    if (prm[1] == 0u) {
        return f32_to_f16(x);
    }
    return f32_to_bf16(x);
}

fn widen(h: u32) -> u32 {
    if (prm[1] == 0u) {
        return f16_to_f32(h);
    }
    return bf16_to_f32(h);
}

// f32 elements (binding 1) → packed halves (binding 2), one word (two elements) per thread.
@compute @workgroup_size(256)
fn f32_to_half(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = prm[0];
    let words = n / 2u + n % 2u;
    for (var j = gid.x; j < words; j += nwg.x * WG) {
        let lo = narrow(src[2u * j]);
        var hi = 0u;
        if (2u * j + 1u < n) {
            hi = narrow(src[2u * j + 1u]);
        }
        dst[j] = (lo & 0xFFFFu) | (hi << 16u);
    }
}

// Packed halves (binding 1) → f32 elements (binding 2).
@compute @workgroup_size(256)
fn half_to_f32(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = prm[0];
    for (var i = gid.x; i < n; i += nwg.x * WG) {
        let h = (src[i / 2u] >> (16u * (i & 1u))) & 0xFFFFu;
        dst[i] = widen(h);
    }
}
