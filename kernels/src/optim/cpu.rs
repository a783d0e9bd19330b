//! The CPU reference of every optimizer step, on the slices of one tensor.
//!
//! Each `*_elem` function is the whole update of one element, in exactly the order of
//! operations `optim.cu` uses (the formulas are on the config structs in [`super::config`]).
//! The slice functions around them only split the work: large tensors are cut into fixed
//! chunks updated in parallel, and since every element is independent and its random bits
//! depend only on its index, the result is the same for any number of threads.
//!
//! Types: `P` is how the parameter is stored (f32, f64 or [`super::Bf16`]), `G` the gradient's
//! storage, `P::Math` the compute and state type (f32 for f32/bf16 parameters, f64 for f64).
//! An empty state slice means "no buffer": signSGD (Lion without momentum) and plain SGD.
//!
//! Callers validate lengths; a mismatch here is a bug and panics.

use super::config::{AdamWConfig, LionConfig, SgdConfig, UpgdConfig, ROUND_STOCHASTIC};
use super::elem::{normal_from_words, Elem};
use crate::random::philox::{counter_for_block, key_from_seed, philox4x32_10};
use crate::Float;
use rayon::prelude::*;

/// Elements per parallel task: a multiple of 4, so every task starts on a Philox block.
const CHUNK: usize = 1 << 14;
/// Below this many elements one thread is faster than splitting.
const PARALLEL_MIN: usize = 1 << 16;

/// Where one tensor's random draws start this step, in Philox blocks (see
/// [`super::launch::rng_blocks`] for how far each draw advances).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RngOffsets {
    pub noise: u64,
    pub round: u64,
}

/// The Philox blocks of one stream, computed once per block as elements are visited in order.
struct Blocks {
    key: [u32; 2],
    offset: u64,
    block: u64,
    words: [u32; 4],
}

impl Blocks {
    fn new(seed: u64, offset: u64) -> Blocks {
        Blocks {
            key: key_from_seed(seed),
            offset,
            block: u64::MAX,
            words: [0; 4],
        }
    }

    #[inline(always)]
    fn get(&mut self, block: u64) -> [u32; 4] {
        if block != self.block {
            self.words = philox4x32_10(counter_for_block(self.offset, block), self.key);
            self.block = block;
        }
        self.words
    }

    /// Element `i`'s stochastic-rounding word: word `i % 4` of block `i / 4`.
    #[inline(always)]
    fn round_word(&mut self, i: usize) -> u32 {
        self.get((i / 4) as u64)[i % 4]
    }

    /// Element `i`'s standard normal: words `2(i % 2)`, `2(i % 2) + 1` of block `i / 2`.
    #[inline(always)]
    fn normal(&mut self, i: usize) -> f32 {
        let w = self.get((i / 2) as u64);
        let lane = 2 * (i % 2);
        normal_from_words(w[lane], w[lane + 1])
    }
}

fn seed_of(lo: u32, hi: u32) -> u64 {
    lo as u64 | ((hi as u64) << 32)
}

/// How a computed value is stored: chosen once per chunk, so the element loops carry no
/// per-element test of the rounding mode and vectorize.
trait Rounder<P: Elem> {
    fn put(&mut self, x: P::Math, i: usize) -> P;
}

/// Round to nearest even (exact for f32 and f64 parameters).
struct Nearest;

impl<P: Elem> Rounder<P> for Nearest {
    #[inline(always)]
    fn put(&mut self, x: P::Math, _: usize) -> P {
        P::store(x, None)
    }
}

/// Stochastic rounding with element `i`'s Philox word.
struct Stochastic(Blocks);

impl<P: Elem> Rounder<P> for Stochastic {
    #[inline(always)]
    fn put(&mut self, x: P::Math, i: usize) -> P {
        P::store(x, Some(self.0.round_word(i)))
    }
}

/// Evaluates `$body` with `$r` bound to the rounder for parameter type `$p`: stochastic when
/// requested and the type rounds (bf16), to nearest otherwise.
macro_rules! with_rounder {
    ($p:ty, $sr:expr, $seed:expr, $offset:expr, |$r:ident| $body:expr) => {
        if <$p as Elem>::ROUNDS && $sr {
            let $r = &mut Stochastic(Blocks::new($seed, $offset));
            $body
        } else {
            let $r = &mut Nearest;
            $body
        }
    };
}

fn split_state<S>(s: &mut [S], count: usize) -> Vec<&mut [S]> {
    if s.is_empty() {
        (0..count).map(|_| <&mut [S]>::default()).collect()
    } else {
        s.chunks_mut(CHUNK).collect()
    }
}

/// Runs `f(start, p, g, s0, s1)` over the tensor, in parallel chunks when it is large. Empty
/// state slices stay empty in every chunk.
fn chunked<P: Send, G: Sync, S: Send>(
    p: &mut [P],
    g: &[G],
    s0: &mut [S],
    s1: &mut [S],
    f: impl Fn(usize, &mut [P], &[G], &mut [S], &mut [S]) + Sync,
) {
    let n = p.len();
    assert_eq!(g.len(), n, "optimizer step: callers check lengths");
    assert!(
        s0.is_empty() || s0.len() == n,
        "optimizer step: callers check lengths"
    );
    assert!(
        s1.is_empty() || s1.len() == n,
        "optimizer step: callers check lengths"
    );
    if n < PARALLEL_MIN {
        return f(0, p, g, s0, s1);
    }
    let count = n.div_ceil(CHUNK);
    let ps: Vec<&mut [P]> = p.chunks_mut(CHUNK).collect();
    let gs: Vec<&[G]> = g.chunks(CHUNK).collect();
    ps.into_par_iter()
        .zip(gs)
        .zip(split_state(s0, count))
        .zip(split_state(s1, count))
        .enumerate()
        .for_each(|(c, (((p, g), a), b))| f(c * CHUNK, p, g, a, b));
}

/// Σ x_i² over a slice in f64, by fixed chunks summed in order: the same result for any
/// number of threads.
fn sum_squares<T: Sync>(x: &[T], value: impl Fn(&T) -> f64 + Sync) -> f64 {
    let partial = |c: &[T]| c.iter().map(|v| value(v).powi(2)).sum::<f64>();
    if x.len() < PARALLEL_MIN {
        return partial(x);
    }
    let parts: Vec<f64> = x.par_chunks(CHUNK).map(partial).collect();
    parts.iter().sum()
}

// ---------------------------------------------------------------------------------------------
// AdamW

/// The AdamW / Adam-L2 update of one element; formulas on [`AdamWConfig`].
#[inline(always)]
pub fn adamw_elem<M: Float>(c: &AdamWConfig<M>, p: M, g: M, m: &mut M, v: &mut M) -> M {
    let mut g = g * c.grad_scale;
    if c.l2 != M::ZERO {
        g += c.l2 * p;
    }
    let p = p * c.keep;
    *m = c.beta1 * *m + c.one_minus_beta1 * g;
    *v = c.beta2 * *v + c.one_minus_beta2 * (g * g);
    let denom = v.sqrt() / c.bc2_sqrt + c.eps;
    p - (c.step_size * *m) / denom
}

/// One AdamW step of one tensor, in place.
pub fn adamw<P: Elem, G: Elem<Math = P::Math>>(
    cfg: &AdamWConfig<P::Math>,
    p: &mut [P],
    g: &[G],
    m: &mut [P::Math],
    v: &mut [P::Math],
    rng: RngOffsets,
) {
    assert!(
        m.len() == p.len() && v.len() == p.len(),
        "adamw: callers check lengths"
    );
    let sr = cfg.stochastic_rounding == ROUND_STOCHASTIC;
    let seed = seed_of(cfg.seed_lo, cfg.seed_hi);
    chunked(p, g, m, v, |start, p, g, m, v| {
        with_rounder!(P, sr, seed, rng.round, |r| adamw_loop(cfg, p, g, m, v, start, r))
    });
}

#[inline(always)]
fn adamw_loop<P: Elem, G: Elem<Math = P::Math>>(
    cfg: &AdamWConfig<P::Math>,
    p: &mut [P],
    g: &[G],
    m: &mut [P::Math],
    v: &mut [P::Math],
    start: usize,
    r: &mut impl Rounder<P>,
) {
    for j in 0..p.len() {
        let x = adamw_elem(cfg, p[j].load(), g[j].load(), &mut m[j], &mut v[j]);
        p[j] = r.put(x, start + j);
    }
}

// ---------------------------------------------------------------------------------------------
// Lion-κ, Signum, signSGD

/// ∇κ(x) for κ = ℓ1: the sign, 0 at 0. Written as two selects rather than an if/else chain so
/// the loop vectorizes (the sign of a random momentum is unpredictable to a branch predictor).
#[inline(always)]
fn sign<M: Float>(x: M) -> M {
    let pos = if x > M::ZERO { M::ONE } else { M::ZERO };
    let neg = if x < M::ZERO { M::ONE } else { M::ZERO };
    pos - neg
}

/// ∇κ at the interpolated momentum `x`; `inv_norm` is `1/‖c‖₂` of this tensor (κ = ℓ2 only).
#[inline(always)]
pub fn lion_direction<M: Float>(c: &LionConfig<M>, x: M, inv_norm: M) -> M {
    match c.kappa {
        0 => sign(x),
        1 => x * inv_norm,
        _ => (x * c.huber_inv_delta).max(-M::ONE).min(M::ONE),
    }
}

/// The Lion-κ update of one element with a momentum buffer and direction map `dir` = ∇κ;
/// formulas on [`LionConfig`].
#[inline(always)]
pub fn lion_elem_with<M: Float>(c: &LionConfig<M>, p: M, g: M, m: &mut M, dir: impl Fn(M) -> M) -> M {
    let g = g * c.grad_scale;
    let x = c.beta1 * *m + c.one_minus_beta1 * g;
    let u = dir(x);
    let p = p * c.keep;
    let p = p - c.lr * u;
    *m = c.beta2 * *m + c.one_minus_beta2 * g;
    p
}

/// Without a buffer (signSGD and its κ variants): the direction is ∇κ(g).
#[inline(always)]
pub fn lion_elem_no_momentum_with<M: Float>(c: &LionConfig<M>, p: M, g: M, dir: impl Fn(M) -> M) -> M {
    let g = g * c.grad_scale;
    let u = dir(g);
    let p = p * c.keep;
    p - c.lr * u
}

/// [`lion_elem_with`] with the configured κ.
#[inline(always)]
pub fn lion_elem<M: Float>(c: &LionConfig<M>, p: M, g: M, m: &mut M, inv_norm: M) -> M {
    lion_elem_with(c, p, g, m, |x| lion_direction(c, x, inv_norm))
}

/// One Lion-κ step of one tensor. `m` empty: no momentum (signSGD). `inv_norm`: for κ = ℓ2,
/// `1/sqrt(`[`lion_sumsq`]`)` of this tensor (0 when that sum is 0); ignored otherwise.
pub fn lion<P: Elem, G: Elem<Math = P::Math>>(
    cfg: &LionConfig<P::Math>,
    p: &mut [P],
    g: &[G],
    m: &mut [P::Math],
    inv_norm: P::Math,
    rng: RngOffsets,
) {
    let sr = cfg.stochastic_rounding == ROUND_STOCHASTIC;
    let seed = seed_of(cfg.seed_lo, cfg.seed_hi);
    let inv_delta = cfg.huber_inv_delta;
    chunked(p, g, m, &mut [], |start, p, g, m, _| {
        // κ and the buffer's presence are chosen outside the element loop, so each loop is
        // branch-free and vectorizes.
        with_rounder!(P, sr, seed, rng.round, |r| match cfg.kappa {
            0 => lion_loop(cfg, p, g, m, start, r, sign),
            1 => lion_loop(cfg, p, g, m, start, r, |x| x * inv_norm),
            _ => lion_loop(cfg, p, g, m, start, r, |x| {
                (x * inv_delta).max(-P::Math::ONE).min(P::Math::ONE)
            }),
        })
    });
}

#[inline(always)]
fn lion_loop<P: Elem, G: Elem<Math = P::Math>>(
    cfg: &LionConfig<P::Math>,
    p: &mut [P],
    g: &[G],
    m: &mut [P::Math],
    start: usize,
    r: &mut impl Rounder<P>,
    dir: impl Fn(P::Math) -> P::Math + Copy,
) {
    if m.is_empty() {
        for j in 0..p.len() {
            let x = lion_elem_no_momentum_with(cfg, p[j].load(), g[j].load(), dir);
            p[j] = r.put(x, start + j);
        }
    } else {
        for j in 0..p.len() {
            let x = lion_elem_with(cfg, p[j].load(), g[j].load(), &mut m[j], dir);
            p[j] = r.put(x, start + j);
        }
    }
}

/// Σ c_i² of the interpolated momentum `c` Lion-κ's ℓ2 direction normalizes (computed in
/// `P::Math` as in the update, accumulated in f64). `m` empty: `c = g`.
pub fn lion_sumsq<G: Elem>(cfg: &LionConfig<G::Math>, g: &[G], m: &[G::Math]) -> f64 {
    assert!(
        m.is_empty() || m.len() == g.len(),
        "lion_sumsq: callers check lengths"
    );
    if m.is_empty() {
        return sum_squares(g, |g| (g.load() * cfg.grad_scale).to_f64());
    }
    let partial = |g: &[G], m: &[G::Math]| {
        let c = |(g, &m): (&G, &G::Math)| {
            let g = g.load() * cfg.grad_scale;
            (cfg.beta1 * m + cfg.one_minus_beta1 * g).to_f64().powi(2)
        };
        g.iter().zip(m).map(c).sum::<f64>()
    };
    if g.len() < PARALLEL_MIN {
        return partial(g, m);
    }
    let parts: Vec<f64> = g
        .par_chunks(CHUNK)
        .zip(m.par_chunks(CHUNK))
        .map(|(g, m)| partial(g, m))
        .collect();
    parts.iter().sum()
}

/// Σ g_i² of a gradient (for the global-norm clip), accumulated in f64.
pub fn grad_sumsq<G: Elem>(g: &[G]) -> f64 {
    sum_squares(g, |g| g.load().to_f64())
}

// ---------------------------------------------------------------------------------------------
// SGD

/// The SGD update of one element with the flags as constants; `B` says whether there is a
/// momentum buffer `b`. Formulas on [`SgdConfig`].
#[inline(always)]
pub fn sgd_elem_k<M: Float, const B: bool, const FIRST: bool, const NESTEROV: bool>(
    c: &SgdConfig<M>,
    p: M,
    g: M,
    b: &mut M,
) -> M {
    let mut g = g * c.grad_scale;
    if c.l2 != M::ZERO {
        g += c.l2 * p;
    }
    let p = p * c.keep;
    let d = if B {
        *b = if FIRST {
            g
        } else {
            c.momentum * *b + c.one_minus_dampening * g
        };
        if NESTEROV {
            g + c.momentum * *b
        } else {
            *b
        }
    } else {
        g
    };
    p - c.lr * d
}

/// The SGD update of one element; `b` is the momentum buffer (`None`: no momentum).
#[inline(always)]
pub fn sgd_elem<M: Float>(c: &SgdConfig<M>, p: M, g: M, b: Option<&mut M>) -> M {
    let mut none = M::ZERO;
    match (b, c.first_step != 0, c.nesterov != 0) {
        (None, _, _) => sgd_elem_k::<M, false, false, false>(c, p, g, &mut none),
        (Some(b), true, false) => sgd_elem_k::<M, true, true, false>(c, p, g, b),
        (Some(b), true, true) => sgd_elem_k::<M, true, true, true>(c, p, g, b),
        (Some(b), false, false) => sgd_elem_k::<M, true, false, false>(c, p, g, b),
        (Some(b), false, true) => sgd_elem_k::<M, true, false, true>(c, p, g, b),
    }
}

/// One SGD step of one tensor. `buf` empty: no momentum.
pub fn sgd<P: Elem, G: Elem<Math = P::Math>>(
    cfg: &SgdConfig<P::Math>,
    p: &mut [P],
    g: &[G],
    buf: &mut [P::Math],
    rng: RngOffsets,
) {
    let sr = cfg.stochastic_rounding == ROUND_STOCHASTIC;
    let seed = seed_of(cfg.seed_lo, cfg.seed_hi);
    chunked(p, g, buf, &mut [], |start, p, g, buf, _| {
        // The flags are chosen outside the element loop, so each loop is branch-free.
        with_rounder!(P, sr, seed, rng.round, |r| match (
            buf.is_empty(),
            cfg.first_step != 0,
            cfg.nesterov != 0
        ) {
            (true, _, _) => sgd_loop::<P, G, false, false, false>(cfg, p, g, buf, start, r),
            (false, true, false) => sgd_loop::<P, G, true, true, false>(cfg, p, g, buf, start, r),
            (false, true, true) => sgd_loop::<P, G, true, true, true>(cfg, p, g, buf, start, r),
            (false, false, false) => sgd_loop::<P, G, true, false, false>(cfg, p, g, buf, start, r),
            (false, false, true) => sgd_loop::<P, G, true, false, true>(cfg, p, g, buf, start, r),
        })
    });
}

#[inline(always)]
fn sgd_loop<P: Elem, G: Elem<Math = P::Math>, const B: bool, const FIRST: bool, const NESTEROV: bool>(
    cfg: &SgdConfig<P::Math>,
    p: &mut [P],
    g: &[G],
    buf: &mut [P::Math],
    start: usize,
    r: &mut impl Rounder<P>,
) {
    let mut none = P::Math::ZERO;
    for j in 0..p.len() {
        let b = if B { &mut buf[j] } else { &mut none };
        let x = sgd_elem_k::<P::Math, B, FIRST, NESTEROV>(cfg, p[j].load(), g[j].load(), b);
        p[j] = r.put(x, start + j);
    }
}

// ---------------------------------------------------------------------------------------------
// UPGD

/// Pass 1 on one tensor: updates the utility EMA in place and returns its largest element
/// (−∞ for an empty tensor; NaNs are skipped, as `fmaxf` does; −0 counts as +0).
pub fn upgd_utility<P: Elem, G: Elem<Math = P::Math>>(
    cfg: &UpgdConfig<P::Math>,
    p: &[P],
    g: &[G],
    u: &mut [P::Math],
) -> P::Math {
    let n = p.len();
    assert!(
        g.len() == n && u.len() == n,
        "upgd_utility: callers check lengths"
    );
    let pass = |p: &[P], g: &[G], u: &mut [P::Math]| {
        let mut max = P::Math::NEG_INFINITY;
        for j in 0..p.len() {
            let gj = g[j].load() * cfg.grad_scale;
            let utility = -(gj * p[j].load());
            u[j] = cfg.beta_u * u[j] + cfg.one_minus_beta_u * utility;
            // Adding +0 turns −0 into +0, so the maximum is one value whatever the order.
            max = max.max(u[j] + P::Math::ZERO);
        }
        max
    };
    if n < PARALLEL_MIN {
        return pass(p, g, u);
    }
    let maxima: Vec<P::Math> = u
        .par_chunks_mut(CHUNK)
        .zip(p.par_chunks(CHUNK))
        .zip(g.par_chunks(CHUNK))
        .map(|((u, p), g)| pass(p, g, u))
        .collect();
    maxima.into_iter().fold(P::Math::NEG_INFINITY, |a, b| a.max(b))
}

/// The UPGD update of one element given its scaled-utility input `util_scale` (from
/// [`UpgdConfig::util_scale`]) and its noise `xi = sigma·z`; formulas on [`UpgdConfig`].
#[inline(always)]
pub fn upgd_elem<M: Float>(c: &UpgdConfig<M>, util_scale: M, p: M, g: M, u: M, xi: M) -> M {
    let g = g * c.grad_scale;
    let s = M::ONE / (M::ONE + (-(u * util_scale)).exp());
    let p = p * c.keep;
    let noisy = c.sigma != M::ZERO;
    if c.protect_gradient != 0 {
        let gn = if noisy { g + xi } else { g };
        p - c.lr_gate * (gn * (M::ONE - s))
    } else if noisy {
        p - c.lr_gate * (g + xi * (M::ONE - s))
    } else {
        p - c.lr_gate * g
    }
}

/// Pass 2 on one tensor: the update, with Gaussian noise from `rng.noise` when `sigma != 0`.
pub fn upgd_update<P: Elem, G: Elem<Math = P::Math>>(
    cfg: &UpgdConfig<P::Math>,
    util_scale: P::Math,
    p: &mut [P],
    g: &[G],
    u: &[P::Math],
    rng: RngOffsets,
) {
    let n = p.len();
    assert!(g.len() == n && u.len() == n, "upgd_update: callers check lengths");
    let sr = cfg.stochastic_rounding == ROUND_STOCHASTIC;
    let seed = cfg.seed();
    let noisy = cfg.sigma != P::Math::ZERO;
    let part = |start: usize, p: &mut [P], g: &[G], u: &[P::Math]| {
        let mut noise = Blocks::new(seed, rng.noise);
        with_rounder!(P, sr, seed, rng.round, |r| {
            for j in 0..p.len() {
                let xi = if noisy {
                    cfg.sigma * P::Math::from_f64(noise.normal(start + j) as f64)
                } else {
                    P::Math::ZERO
                };
                let x = upgd_elem(cfg, util_scale, p[j].load(), g[j].load(), u[j], xi);
                p[j] = r.put(x, start + j);
            }
        })
    };
    if n < PARALLEL_MIN {
        return part(0, p, g, u);
    }
    p.par_chunks_mut(CHUNK)
        .zip(g.par_chunks(CHUNK))
        .zip(u.par_chunks(CHUNK))
        .enumerate()
        .for_each(|(c, ((p, g), u))| part(c * CHUNK, p, g, u));
}
