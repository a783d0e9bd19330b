//! CPU reference of the masked softmax family and the fused cross-entropy. The formulas, the
//! option semantics and the bad-input rules are in the module documentation (`mod.rs`); this
//! file is the readable implementation the CUDA kernels are checked against.
//!
//! Cost per row of C classes, with s = bytes per logit (4 f32, 8 f64, 2 bf16):
//!   cross-entropy forward   reads C·s (+ the mask: C bytes dense, C/8 bitset, 8 B ranges),
//!                           writes loss, lse and three coefficients; C `exp`, ~4C FLOPs.
//!   cross-entropy backward  reads C·s (+ mask), writes C·size_of::<T>(); C `exp`, ~3C FLOPs.
//!   masked softmax          as `softmax::cpu` (reads and writes C values), plus the mask.
//!
//! How the forward streams: each row is cut into chunks of [`CHUNK`] logits. A chunk is widened
//! into a small stack buffer (so bf16 logits become f32 there, and the exp loop runs on a
//! contiguous, cache-resident slice), its masked entries are set to -inf, and its own max and
//! Σ exp(z − max) are folded into the row's running (max, sum) with the online rescaling of
//! Milakov & Gimelshein (2018). No buffer of a whole row is ever made, so a 256k-class row costs
//! the same 8 KiB of stack as a 1k-class one, and each logit is read once.

use super::mask::{ClassMask, RowMask};
use super::{RowCoef, XentOptions, XentRows};
use crate::reduce::cpu::{max, sum};
use crate::softmax::cpu::{
    log_softmax_backward_row, log_softmax_in_place, map_rows, row_count, softmax_backward_row,
    softmax_in_place, PARALLEL_MIN_ELEMENTS,
};
use crate::Float;
use rayon::prelude::*;

/// Logits per chunk of the streaming forward: 1024 f64 are 8 KiB, well inside L1.
pub const CHUNK: usize = 1024;

/// A bfloat16 value as its bits (the upper half of an f32). The kernels crate has no `half`
/// dependency; `half::bf16` has the same layout, so callers reinterpret their slices.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(transparent)]
pub struct Bf16(pub u16);

impl Bf16 {
    /// Round to nearest, ties to even (as `__float2bfloat16_rn`); NaN stays a (quiet) NaN.
    pub fn from_f32(v: f32) -> Bf16 {
        let b = v.to_bits();
        if v.is_nan() {
            return Bf16(((b >> 16) as u16) | 0x40);
        }
        let round = 0x7fff + ((b >> 16) & 1);
        Bf16((b.wrapping_add(round) >> 16) as u16)
    }

    pub fn to_f32(self) -> f32 {
        f32::from_bits((self.0 as u32) << 16)
    }
}

/// A stored logit type and the compute type it widens to: f32 → f32, f64 → f64, bf16 → f32.
pub trait Logit<T: Float>: Copy + Send + Sync {
    fn widen(self) -> T;
}

/// Every compute type is its own logit type.
impl<T: Float> Logit<T> for T {
    #[inline(always)]
    fn widen(self) -> T {
        self
    }
}

impl Logit<f32> for Bf16 {
    #[inline(always)]
    fn widen(self) -> f32 {
        self.to_f32()
    }
}

// ---------------------------------------------------------------------------------------------
// Masked softmax and log-softmax

/// Softmax of each row of `n` logits with the masked entries replaced by `mask_value`.
pub fn masked_softmax<T: Float>(x: &[T], n: usize, mask: &ClassMask, mask_value: T) -> Vec<T> {
    masked_rows(x, n, mask, mask_value, softmax_in_place)
}

/// Log-softmax of each row of `n` logits with the masked entries replaced by `mask_value`.
pub fn masked_log_softmax<T: Float>(x: &[T], n: usize, mask: &ClassMask, mask_value: T) -> Vec<T> {
    masked_rows(x, n, mask, mask_value, log_softmax_in_place)
}

/// Gradient of [`masked_softmax`] from its output `y`: the unmasked formula
/// `y ⊙ (g − Σ g⊙y)` (the sum runs over masked entries too: with a finite mask value their
/// outputs e^m/Z still depend on the allowed logits through Z), then exactly 0 on masked entries.
pub fn masked_softmax_backward<T: Float>(y: &[T], g: &[T], n: usize, mask: &ClassMask) -> Vec<T> {
    masked_backward(y, g, n, mask, softmax_backward_row)
}

/// Gradient of [`masked_log_softmax`] from its output `y`: `g − softmax·Σg`, then exactly 0 on
/// masked entries.
pub fn masked_log_softmax_backward<T: Float>(y: &[T], g: &[T], n: usize, mask: &ClassMask) -> Vec<T> {
    masked_backward(y, g, n, mask, log_softmax_backward_row)
}

fn masked_rows<T: Float>(x: &[T], n: usize, mask: &ClassMask, m: T, f: fn(&mut [T])) -> Vec<T> {
    let rows = row_count(x.len(), n);
    checked(mask, rows, n);
    let mut y = vec![T::ZERO; x.len()];
    map_rows(&mut y, rows, n, |r, out| {
        out.copy_from_slice(&x[r * n..(r + 1) * n]);
        // The mask value replaces the logit outright (stop-gradient): z̃ = m, whatever x was.
        mask.row(r).fill_masked(0, out, m);
        f(out);
    });
    y
}

fn masked_backward<T: Float>(
    y: &[T],
    g: &[T],
    n: usize,
    mask: &ClassMask,
    row: fn(&[T], &[T], &mut [T]),
) -> Vec<T> {
    assert_eq!(
        y.len(),
        g.len(),
        "masked softmax backward: y and g differ in length"
    );
    let rows = row_count(y.len(), n);
    checked(mask, rows, n);
    let mut dx = vec![T::ZERO; y.len()];
    map_rows(&mut dx, rows, n, |r, out| {
        row(&y[r * n..(r + 1) * n], &g[r * n..(r + 1) * n], out);
        // Stop-gradient: masked logits do not reach the output. Overwriting (rather than
        // computing a product that happens to be 0) makes the zero exact even where y or g is
        // not finite.
        mask.row(r).fill_masked(0, out, T::ZERO);
    });
    dx
}

fn checked(mask: &ClassMask, rows: usize, classes: usize) {
    if let Err(why) = mask.check(rows, classes) {
        panic!("masked_xent: {why} (callers validate masks)");
    }
}

// ---------------------------------------------------------------------------------------------
// Fused cross-entropy

/// Per-row loss, log-sum-exp and backward coefficients of the masked cross-entropy of
/// `[rows, classes]` logits against `targets`, with `opts` (see the module documentation).
/// Targets other than `ignore_index` must lie in `0..classes` (a caller bug otherwise: panics).
pub fn cross_entropy_forward<L: Logit<T>, T: Float>(
    logits: &[L],
    targets: &[i64],
    classes: usize,
    mask: &ClassMask,
    opts: &XentOptions,
) -> XentRows<T> {
    assert!(classes > 0, "cross_entropy: no classes");
    let rows = row_count(logits.len(), classes);
    assert_eq!(targets.len(), rows, "cross_entropy: one target per row");
    checked(mask, rows, classes);
    let row = |buf: &mut [T; CHUNK], r: usize| {
        let x = &logits[r * classes..(r + 1) * classes];
        xent_row(x, targets[r], mask.row(r), opts, buf)
    };
    let per_row: Vec<(T, T, RowCoef<T>)> = if logits.len() >= PARALLEL_MIN_ELEMENTS {
        (0..rows)
            .into_par_iter()
            .map_init(|| [T::ZERO; CHUNK], row)
            .collect()
    } else {
        let mut buf = [T::ZERO; CHUNK];
        (0..rows).map(|r| row(&mut buf, r)).collect()
    };
    let mut out = XentRows {
        loss: Vec::with_capacity(rows),
        lse: Vec::with_capacity(rows),
        coef: Vec::with_capacity(rows),
    };
    for (loss, lse, coef) in per_row {
        out.loss.push(loss);
        out.lse.push(lse);
        out.coef.push(coef);
    }
    out
}

/// Gradient of Σ_r g_r·loss_r with respect to the logits (in the compute type `T`, also for
/// bf16 logits), from the forward's saved `lse` and `coef`. `g` has one value per row, or one
/// for all rows (already divided by the count for a mean).
pub fn cross_entropy_backward<L: Logit<T>, T: Float>(
    logits: &[L],
    targets: &[i64],
    classes: usize,
    mask: &ClassMask,
    lse: &[T],
    coef: &[RowCoef<T>],
    g: &[T],
) -> Vec<T> {
    assert_eq!(coef.len(), lse.len(), "cross_entropy_backward: one coef per lse");
    backward_rows(logits, targets, classes, mask, lse, |r| coef[r], g)
}

/// The backward with one set of coefficients for every row: the plain cross-entropy's
/// (β, off, target) = (1, 0, 1), i.e. `g·(softmax − onehot)`. Used by `loss::cpu`.
pub(crate) fn plain_cross_entropy_backward<L: Logit<T>, T: Float>(
    logits: &[L],
    targets: &[i64],
    classes: usize,
    lse: &[T],
    g: &[T],
) -> Vec<T> {
    let plain = RowCoef {
        beta: T::ONE,
        off: T::ZERO,
        target: T::ONE,
    };
    backward_rows(logits, targets, classes, &ClassMask::All, lse, |_| plain, g)
}

fn backward_rows<L: Logit<T>, T: Float>(
    logits: &[L],
    targets: &[i64],
    classes: usize,
    mask: &ClassMask,
    lse: &[T],
    coef: impl Fn(usize) -> RowCoef<T> + Sync,
    g: &[T],
) -> Vec<T> {
    assert!(classes > 0, "cross_entropy_backward: no classes");
    let rows = row_count(logits.len(), classes);
    assert!(
        targets.len() == rows && lse.len() == rows,
        "cross_entropy_backward: one target and lse per row"
    );
    assert!(
        g.len() == rows || g.len() == 1,
        "cross_entropy_backward: g per row or one for all"
    );
    checked(mask, rows, classes);
    let mut dx = vec![T::ZERO; logits.len()];
    map_rows(&mut dx, rows, classes, |r, out| {
        let (l, c) = (lse[r], coef(r));
        // All-zero coefficients: an ignored row, or one with no finite allowed logit (loss
        // +inf whatever the logits). Leaving the zeros avoids 0·inf = NaN from garbage logits.
        let idle = c.beta == T::ZERO && c.off == T::ZERO && c.target == T::ZERO;
        if idle || l == T::NEG_INFINITY {
            return;
        }
        let gr = if g.len() == 1 { g[0] } else { g[r] };
        let x = &logits[r * classes..(r + 1) * classes];
        // With (β, off) = (1, 0) this is exactly g·exp(x − lse): 1·e and e − 0 are exact.
        for (o, &v) in out.iter_mut().zip(x) {
            *o = v.widen() - l;
        }
        T::exp_in_place(out);
        for o in out.iter_mut() {
            *o = gr * (c.beta * *o - c.off);
        }
        let row_mask = mask.row(r);
        row_mask.fill_masked(0, out, T::ZERO);
        let t = class(targets[r], classes);
        if row_mask.allowed(t) {
            out[t] -= gr * c.target;
        }
    });
    dx
}

/// One row of the forward: (loss, lse, coefficients).
fn xent_row<L: Logit<T>, T: Float>(
    x: &[L],
    target: i64,
    mask: RowMask<'_>,
    o: &XentOptions,
    buf: &mut [T; CHUNK],
) -> (T, T, RowCoef<T>) {
    let classes = x.len();
    let m = T::from_f64(o.mask_value);
    let smoothing = o.label_smoothing > 0.0;
    let allowed = mask.count(classes);
    let (lse, sum_allowed) = row_lse(x, mask, m, classes - allowed, smoothing, buf);
    if Some(target) == o.ignore_index {
        return (T::ZERO, lse, RowCoef::zero());
    }
    if lse == T::NEG_INFINITY {
        // No allowed class has a finite logit: the target's probability is 0.
        return (T::INFINITY, lse, RowCoef::zero());
    }
    let t = class(target, classes);
    let t_allowed = mask.allowed(t);
    let z_t = if t_allowed { x[t].widen() } else { m };
    let eps = T::from_f64(o.label_smoothing);
    let mean_allowed = if allowed > 0 {
        sum_allowed / T::from_f64(allowed as f64)
    } else {
        T::ZERO
    };
    // −Σ_c q_c·log p_c with q = (1 − ε)·onehot(t) + ε/A on the A allowed classes.
    let ce = if smoothing {
        lse - ((T::ONE - eps) * z_t + eps * mean_allowed)
    } else {
        lse - z_t
    };
    // Focal factor w = (1 − p_t)^γ and a = ∂w/∂z_t-part: ∂ℓ/∂x_c = w(p_c − q_c) + a(p_c − [c=t]).
    let (mut w, mut a) = (T::ONE, T::ZERO);
    if o.focal_gamma > 0.0 {
        let gamma = T::from_f64(o.focal_gamma);
        let p_t = (z_t - lse).exp();
        // p_t ≤ 1 in exact arithmetic; rounding can push it an ulp above.
        let u = (T::ONE - p_t).max(T::ZERO);
        w = u.powf(gamma);
        // At u = 0 with γ < 1 the derivative of u^γ is infinite; it is taken as 0 there
        // (a point where the loss is already at its minimum without smoothing).
        if ce.is_finite() && (u > T::ZERO || o.focal_gamma >= 1.0) {
            a = gamma * u.powf(gamma - T::ONE) * p_t * ce;
        }
    }
    let mut loss = w * ce;
    let mut beta = w + a;
    if o.z_loss > 0.0 {
        let lambda = T::from_f64(o.z_loss);
        loss += lambda * lse * lse;
        beta += (lambda + lambda) * lse;
    }
    let off = if smoothing && allowed > 0 {
        w * eps / T::from_f64(allowed as f64)
    } else {
        T::ZERO
    };
    let target_coef = if t_allowed {
        w * (T::ONE - eps) + a
    } else {
        T::ZERO
    };
    let coef = RowCoef {
        beta,
        off,
        target: target_coef,
    };
    (loss, lse, coef)
}

/// ln(Σ_allowed e^{x_c} + K·e^m) over one row, K = `masked` classes, with the chunked online
/// log-sum-exp; also Σ_allowed x_c when `want_sum` (0 otherwise). NaN if an allowed logit is NaN,
/// +inf if one is +inf (and none is NaN), -inf if there is no finite term.
fn row_lse<L: Logit<T>, T: Float>(
    x: &[L],
    mask: RowMask<'_>,
    m: T,
    masked: usize,
    want_sum: bool,
    buf: &mut [T; CHUNK],
) -> (T, T) {
    let (mut big_m, mut s, mut total) = (T::NEG_INFINITY, T::ZERO, T::ZERO);
    let mut pos_inf = false;
    for (k, xs) in x.chunks(CHUNK).enumerate() {
        let z = &mut buf[..xs.len()];
        for (o, &v) in z.iter_mut().zip(xs) {
            *o = v.widen();
        }
        if want_sum {
            mask.fill_masked(k * CHUNK, z, T::ZERO);
            total += sum(z);
        }
        // Masked entries take no part here; their constant K·e^m is added once at the end.
        mask.fill_masked(k * CHUNK, z, T::NEG_INFINITY);
        let cm = max(z);
        if cm.is_nan() {
            return (cm, total);
        }
        if cm == T::INFINITY {
            // ln of an infinite sum; keep scanning, a NaN later still wins.
            pos_inf = true;
            continue;
        }
        if cm == T::NEG_INFINITY {
            continue;
        }
        for v in z.iter_mut() {
            *v -= cm;
        }
        T::exp_in_place(z);
        fold(&mut big_m, &mut s, cm, sum(z));
    }
    if pos_inf {
        return (T::INFINITY, total);
    }
    if masked > 0 && m > T::NEG_INFINITY {
        fold(&mut big_m, &mut s, m, T::from_f64(masked as f64));
    }
    if big_m == T::NEG_INFINITY {
        return (big_m, total);
    }
    (big_m + s.ln(), total)
}

/// Fold a partial (max `cm`, Σ e^{z − cm} = `cs`) into the running (max, sum), rescaling the
/// side whose max is smaller so that every exponent stays ≤ 0. With nothing folded yet (max
/// -inf, sum 0) the result is exactly (cm, cs).
#[inline]
fn fold<T: Float>(big_m: &mut T, s: &mut T, cm: T, cs: T) {
    if cm > *big_m {
        *s = *s * (*big_m - cm).exp() + cs;
        *big_m = cm;
    } else {
        *s += cs * (cm - *big_m).exp();
    }
}

/// The target as a class index; panics on a caller bug (the op validated the targets).
#[inline(always)]
fn class(t: i64, classes: usize) -> usize {
    match usize::try_from(t) {
        Ok(c) if c < classes => c,
        _ => panic!("cross_entropy: target {t} outside 0..{classes} (callers validate targets)"),
    }
}
