//! The few numpy routines whose exact floating-point behaviour the COCO reference depends on:
//! `linspace` (threshold values such as 0.35000000000000003) and `mean` (pairwise summation).

/// `numpy.linspace(start, stop, num)` with `endpoint=True`, value for value: `k * step + start`
/// with `step = (stop - start) / (num - 1)`, and the last value set to `stop`.
pub fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    if num == 0 {
        return Vec::new();
    }
    if num == 1 {
        return vec![start];
    }
    let div = (num - 1) as f64;
    let delta = stop - start;
    let step = delta / div;
    let mut y: Vec<f64> = if step == 0.0 {
        (0..num).map(|k| (k as f64 / div) * delta + start).collect()
    } else {
        (0..num).map(|k| k as f64 * step + start).collect()
    };
    y[num - 1] = stop;
    y
}

/// numpy's unrolled pairwise summation of one contiguous run (`pairwise_sum_DOUBLE`).
fn pairwise_sum(a: &[f64]) -> f64 {
    let n = a.len();
    if n < 8 {
        let mut res = 0.0;
        for &x in a {
            res += x;
        }
        res
    } else if n <= 128 {
        let mut r = [0.0f64; 8];
        r.copy_from_slice(&a[..8]);
        let mut i = 8;
        while i < n - (n % 8) {
            for j in 0..8 {
                r[j] += a[i + j];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        while i < n {
            res += a[i];
            i += 1;
        }
        res
    } else {
        let mut n2 = n / 2;
        n2 -= n2 % 8;
        pairwise_sum(&a[..n2]) + pairwise_sum(&a[n2..])
    }
}

/// `numpy.sum` of a contiguous float64 array: one pairwise summation over the whole run
/// (checked against numpy 2 on 80,800-element arrays, the size of COCO's precision slices).
pub fn sum(a: &[f64]) -> f64 {
    pairwise_sum(a)
}

/// `numpy.mean` of a contiguous float64 array (NaN when empty, as numpy).
pub fn mean(a: &[f64]) -> f64 {
    sum(a) / a.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linspace_matches_numpy_values() {
        // Values printed by numpy: np.linspace(0, 1, 101)[35], np.linspace(.5, .95, 10)[8].
        let r = linspace(0.0, 1.0, 101);
        assert_eq!(r[35], 0.35000000000000003);
        assert_eq!(r[100], 1.0);
        let t = linspace(0.5, 0.95, 10);
        assert_eq!(t[8], 0.8999999999999999);
        assert_eq!(t[0], 0.5);
        assert_eq!(t[5], 0.75);
    }

    #[test]
    fn pairwise_sum_differs_from_naive_like_numpy() {
        // 0.1 summed 1000 times: numpy gives 100.00000000000001 (naive gives 99.9999999999986).
        let a = vec![0.1; 1000];
        assert_eq!(sum(&a), 100.00000000000001);
        assert_eq!(mean(&[1.0, 2.0, 4.0]), 7.0 / 3.0);
    }
}
