//! Learning-rate schedules as pure functions of the step.
//!
//! A [`Schedule`] maps the number of optimizer steps already taken, `t = 0, 1, 2, ...`, to a
//! multiplier `s_t` of each parameter group's base learning rate: the first update uses
//! `s_0` (as `torch.optim.lr_scheduler.LambdaLR` and optax's schedules do). Being a pure
//! function of `t`, a schedule needs no state of its own: an optimizer restored from a
//! checkpoint (which stores `t`) continues it exactly. The same `s_t` is the schedule
//! multiplier `η_t` of the "paper" and "independent" weight-decay modes.
//!
//! Peaks are 1: warmups rise to 1, decays fall from 1 to a `final` fraction. Every phase is
//! continuous at its boundaries unless a jump is the point (re-warming).

use autograd::{Error, Result};
use std::f64::consts::PI;
use std::sync::Arc;

/// The shape of the decay phase of warmup-stable-decay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecayShape {
    /// `1 - x` (x the fraction of the decay phase elapsed).
    Linear,
    /// `1 - sqrt(x)`: Hägele et al. 2024's cooldown, used by [393].
    OneMinusSqrt,
}

/// The shape of the infinite schedule's cooldown from 1 to `constant` (Ibrahim et al. [33],
/// Section 7.3, which offers both).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum CooldownShape {
    /// Half a cosine from 1 to `constant`.
    Cosine,
    /// `1 + (constant - 1)·h(x)/h(1)` with `h(x) = 1/sqrt(1 + timescale·x) - 1` and `x` the
    /// fraction of the cooldown elapsed: falls fast at first and flattens towards `constant`
    /// (more so for a larger `timescale`); the normalization by `h(1)` makes it end exactly
    /// at `constant` whatever the timescale.
    InverseSqrt { timescale: f64 },
}

impl CooldownShape {
    /// The cooldown's value at fraction `x` of its length, from 1 (x = 0) to `end` (x = 1).
    fn at(self, x: f64, end: f64) -> f64 {
        match self {
            CooldownShape::Cosine => cosine(x, end),
            CooldownShape::InverseSqrt { timescale } => {
                let h = |x: f64| 1.0 / (1.0 + timescale * x).sqrt() - 1.0;
                1.0 + (end - 1.0) * (h(x) / h(1.0))
            }
        }
    }
}

/// How [`refine_from_grad_norms`] weighs each step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefineWeights {
    /// `w_t = ‖g_t‖₂⁻²`: the SGD-type refinement (Defazio et al., Algorithm 1).
    InverseSquare,
    /// `w_t = ‖g_t‖₁⁻¹`: the variant for coordinate-wise methods such as Adam; pass ℓ1 norms.
    Inverse,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Schedule {
    /// `s_t = 1`.
    Constant,
    /// Linear from `init` at `t = 0` to 1 at `t = warmup`, then 1.
    LinearWarmup { warmup: u64, init: f64 },
    /// Linear from 1 at `t = 0` to `final_value` at `t = total`, then `final_value`.
    LinearDecay { total: u64, final_value: f64 },
    /// Linear warmup from 0 to 1 over `warmup` steps, then half a cosine from 1 at `warmup` to
    /// `final_value` at `total`, then `final_value` (SGDR's annealing without restarts).
    Cosine {
        warmup: u64,
        total: u64,
        final_value: f64,
    },
    /// Warmup-stable-decay ([393]): linear warmup 0 → 1 over `warmup` steps, 1 until
    /// `total - decay`, then down to `final_value` at `total` along `shape`.
    WarmupStableDecay {
        warmup: u64,
        total: u64,
        decay: u64,
        final_value: f64,
        shape: DecayShape,
    },
    /// The infinite schedule ([34], as defined in [33]): linear warmup 0 → 1 over `warmup`,
    /// a cooldown 1 → `constant` along `cooldown_shape` (cosine or inverse-sqrt) over the next
    /// `cooldown` steps, `constant` for as long as needed, and, once `anneal_start` is set, a geometric anneal
    /// `constant · (min/constant)^((t - start)/anneal_steps)` reaching `min` after
    /// `anneal_steps` and staying there.
    Infinite {
        warmup: u64,
        cooldown: u64,
        cooldown_shape: CooldownShape,
        constant: f64,
        anneal_start: Option<u64>,
        anneal_steps: u64,
        min: f64,
    },
    /// Re-warming and re-decaying ([33]/[75]): at each stage start (the first must be 0) the
    /// schedule restarts: linear warmup from `final_value` to 1 over `warmup` steps, then a
    /// cosine to `final_value` over the rest of `length`, then `final_value` until the next stage.
    Rewarm {
        stage_starts: Vec<u64>,
        warmup: u64,
        length: u64,
        final_value: f64,
    },
    /// Precomputed values, `s_t = values[t]`, and the last value beyond the end (the output of
    /// [`refine_from_grad_norms`]).
    Table(Arc<[f64]>),
}

/// `a + (b - a)·x`.
fn lerp(a: f64, b: f64, x: f64) -> f64 {
    a + (b - a) * x
}

/// Fraction of `[start, start + len]` elapsed at `t`, clamped to `[0, 1]` (1 when `len = 0`).
fn progress(t: u64, start: u64, len: u64) -> f64 {
    if len == 0 || t >= start + len {
        1.0
    } else if t <= start {
        0.0
    } else {
        (t - start) as f64 / len as f64
    }
}

/// Half a cosine from 1 (x = 0) to `final_value` (x = 1).
fn cosine(x: f64, final_value: f64) -> f64 {
    final_value + (1.0 - final_value) * 0.5 * (1.0 + (PI * x).cos())
}

impl Schedule {
    /// The multiplier before the `t+1`-th update (`t` steps already taken).
    pub fn at(&self, t: u64) -> f64 {
        match self {
            Schedule::Constant => 1.0,
            Schedule::LinearWarmup { warmup, init } => lerp(*init, 1.0, progress(t, 0, *warmup)),
            Schedule::LinearDecay { total, final_value } => lerp(1.0, *final_value, progress(t, 0, *total)),
            Schedule::Cosine {
                warmup,
                total,
                final_value,
            } => {
                if t < *warmup {
                    progress(t, 0, *warmup)
                } else {
                    cosine(progress(t, *warmup, total.saturating_sub(*warmup)), *final_value)
                }
            }
            Schedule::WarmupStableDecay {
                warmup,
                total,
                decay,
                final_value,
                shape,
            } => {
                let decay_start = total.saturating_sub(*decay);
                if t < *warmup {
                    progress(t, 0, *warmup)
                } else if t < decay_start {
                    1.0
                } else {
                    let x = progress(t, decay_start, *decay);
                    let fall = match shape {
                        DecayShape::Linear => x,
                        DecayShape::OneMinusSqrt => x.sqrt(),
                    };
                    lerp(1.0, *final_value, fall)
                }
            }
            Schedule::Infinite {
                warmup,
                cooldown,
                cooldown_shape,
                constant,
                anneal_start,
                anneal_steps,
                min,
            } => match anneal_start {
                Some(start) if t >= *start => {
                    let x = progress(t, *start, *anneal_steps);
                    constant * (min / constant).powf(x)
                }
                _ if t < *warmup => progress(t, 0, *warmup),
                _ => cooldown_shape.at(progress(t, *warmup, *cooldown), *constant),
            },
            Schedule::Rewarm {
                stage_starts,
                warmup,
                length,
                final_value,
            } => {
                let start = stage_starts.iter().rev().find(|&&s| s <= t).copied().unwrap_or(0);
                if t < start + warmup {
                    lerp(*final_value, 1.0, progress(t, start, *warmup))
                } else {
                    cosine(
                        progress(t, start + warmup, length.saturating_sub(*warmup)),
                        *final_value,
                    )
                }
            }
            Schedule::Table(values) => match values.get(t as usize).or(values.last()) {
                Some(&v) => v,
                None => 1.0,
            },
        }
    }

    /// Checks the parameters: fractions finite and non-negative, phases that fit.
    pub fn validate(&self) -> Result<()> {
        let bad = |reason: String| {
            Err(Error::InvalidArgument {
                op: "Schedule",
                reason,
            })
        };
        let fraction = |name: &str, v: f64| -> Result<()> {
            if !(v.is_finite() && v >= 0.0) {
                return bad(format!("{name} = {v} must be finite and >= 0"));
            }
            Ok(())
        };
        match self {
            Schedule::Constant => Ok(()),
            Schedule::LinearWarmup { init, .. } => fraction("init", *init),
            Schedule::LinearDecay { final_value, .. } => fraction("final_value", *final_value),
            Schedule::Cosine {
                warmup,
                total,
                final_value,
            } => {
                fraction("final_value", *final_value)?;
                if warmup > total {
                    return bad(format!("warmup {warmup} > total {total}"));
                }
                Ok(())
            }
            Schedule::WarmupStableDecay {
                warmup,
                total,
                decay,
                final_value,
                ..
            } => {
                fraction("final_value", *final_value)?;
                if warmup + decay > *total {
                    return bad(format!("warmup {warmup} + decay {decay} > total {total}"));
                }
                Ok(())
            }
            Schedule::Infinite {
                warmup,
                cooldown,
                cooldown_shape,
                constant,
                anneal_start,
                min,
                ..
            } => {
                fraction("min", *min)?;
                if let CooldownShape::InverseSqrt { timescale } = cooldown_shape {
                    // h(1) = 0 at timescale 0: the normalized curve would be 0/0.
                    if !(timescale.is_finite() && *timescale > 0.0) {
                        return bad(format!(
                            "inverse-sqrt cooldown timescale = {timescale} must be finite and > 0"
                        ));
                    }
                }
                if !(constant.is_finite() && *constant > 0.0) {
                    return bad(format!("constant = {constant} must be finite and > 0"));
                }
                match anneal_start {
                    Some(s) if *s < warmup + cooldown => bad(format!(
                        "anneal_start {s} is inside warmup + cooldown ({})",
                        warmup + cooldown
                    )),
                    _ => Ok(()),
                }
            }
            Schedule::Rewarm {
                stage_starts,
                warmup,
                length,
                final_value,
            } => {
                fraction("final_value", *final_value)?;
                if stage_starts.first() != Some(&0) || stage_starts.windows(2).any(|w| w[0] >= w[1]) {
                    return bad(format!(
                        "stage_starts {stage_starts:?} must start at 0 and increase"
                    ));
                }
                if warmup > length {
                    return bad(format!("warmup {warmup} > length {length}"));
                }
                Ok(())
            }
            Schedule::Table(values) => match values.iter().find(|v| !(v.is_finite() && **v >= 0.0)) {
                Some(v) => bad(format!("table value {v} must be finite and >= 0")),
                None => Ok(()),
            },
        }
    }
}

/// The refinement of Defazio, Cutkosky, Mehta and Mishchenko ("When, Why and How Much?
/// Adaptive Learning Rate Scheduling by Refinement", 2023, Algorithm 1): from the gradient
/// norms `norms[t]` of a previous run, optionally median-smoothed over `median_window` steps
/// (an odd window, edges clamped), set `w_t` by `weights` and
///
/// ```text
/// s_t ∝ w_t · Σ_{p > t} w_p,   normalized so that max_t s_t = 1   (s_{T-1} = 0)
/// ```
///
/// With constant norms this is linear decay to 0, `s_t ∝ T - 1 - t`. (Checked against the
/// authors' `find_closed_form_schedule`, which computes `w_t · tail_sum[t + 1]`.)
pub fn refine_from_grad_norms(
    norms: &[f64],
    weights: RefineWeights,
    median_window: usize,
) -> Result<Schedule> {
    let bad = |reason: String| {
        Err(Error::InvalidArgument {
            op: "refine_from_grad_norms",
            reason,
        })
    };
    if norms.len() < 2 {
        return bad(format!("needs at least 2 norms, got {}", norms.len()));
    }
    if let Some(n) = norms.iter().find(|n| !(n.is_finite() && **n > 0.0)) {
        return bad(format!("norm {n} must be finite and > 0"));
    }
    let smoothed = median_filter(norms, median_window.max(1) | 1);
    let w: Vec<f64> = smoothed
        .iter()
        .map(|&n| match weights {
            RefineWeights::InverseSquare => 1.0 / (n * n),
            RefineWeights::Inverse => 1.0 / n,
        })
        .collect();
    let mut tail = 0.0;
    let mut s = vec![0.0; w.len()];
    for t in (0..w.len()).rev() {
        s[t] = w[t] * tail;
        tail += w[t];
    }
    let peak = s.iter().cloned().fold(0.0, f64::max);
    Ok(Schedule::Table(s.iter().map(|v| v / peak).collect()))
}

/// Median over a centred odd window, the window clamped at the ends.
fn median_filter(x: &[f64], window: usize) -> Vec<f64> {
    let half = window / 2;
    (0..x.len())
        .map(|i| {
            let (lo, hi) = (i.saturating_sub(half), (i + half + 1).min(x.len()));
            let mut w = x[lo..hi].to_vec();
            w.sort_by(f64::total_cmp);
            w[w.len() / 2]
        })
        .collect()
}

#[cfg(test)]
mod tests;
