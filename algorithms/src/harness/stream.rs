//! A Si-Blurry-like online class-incremental stream on H1 blobs, for [52].
//!
//! Si-Blurry (Moon et al., ICCV 2023, [52]) makes task boundaries stochastic and classes
//! imbalanced. This stand-in keeps those three properties and nothing image-specific:
//!
//! * the classes are shuffled and cut into `tasks` non-empty groups at random cut points, so
//!   tasks hold different numbers of classes;
//! * class c has `n_c` samples, `n_c` log-uniform within a factor `imbalance` (max/min);
//! * a fraction `blurry` of every class's samples is moved into a uniformly chosen *other*
//!   task, so each task also shows off-task ("blurry") samples of earlier or later classes;
//! * within a task the samples are shuffled; the stream is the tasks in order, seen once.
//!
//! Si-Blurry itself also splits classes into "disjoint" and "blurry" sets and draws the blurry
//! share per class; here every class contributes blurry samples, a simplification.

use rand::{RngExt, SeedableRng};

use super::blobs::{blobs, permutation, BlobSpec, Blobs};

#[derive(Clone, Debug, PartialEq)]
pub struct StreamSpec {
    pub classes: usize,
    pub dim: usize,
    pub tasks: usize,
    /// Geometric mean of the per-class sample counts.
    pub samples_per_class: usize,
    /// Ratio of the largest to the smallest per-class count range (1: balanced).
    pub imbalance: f64,
    /// Fraction of each class's samples moved to another task.
    pub blurry: f64,
    pub test_per_class: usize,
    pub separation: f64,
    pub seed: u64,
}

impl Default for StreamSpec {
    fn default() -> Self {
        StreamSpec {
            classes: 10,
            dim: 16,
            tasks: 5,
            samples_per_class: 100,
            imbalance: 4.0,
            blurry: 0.1,
            test_per_class: 100,
            separation: 1.0,
            seed: 0,
        }
    }
}

/// The stream in arrival order, with its task structure and a balanced test set.
#[derive(Clone, Debug, PartialEq)]
pub struct Stream {
    pub samples: Blobs,
    /// The task each stream sample arrives in.
    pub task_of: Vec<usize>,
    /// The classes each task owns (its non-blurry classes).
    pub task_classes: Vec<Vec<usize>>,
    /// Index of the first sample of each task, plus the stream length at the end.
    pub task_starts: Vec<usize>,
    pub test: Blobs,
}

pub fn si_blurry(spec: &StreamSpec) -> Result<Stream, String> {
    if spec.tasks == 0 || spec.tasks > spec.classes {
        return Err(format!(
            "si_blurry: need 1 <= tasks <= classes, got {} tasks for {} classes",
            spec.tasks, spec.classes
        ));
    }
    if !(spec.imbalance.is_finite() && spec.imbalance >= 1.0 && (0.0..1.0).contains(&spec.blurry)) {
        return Err(format!(
            "si_blurry: imbalance must be >= 1 and blurry in [0, 1), got {} and {}",
            spec.imbalance, spec.blurry
        ));
    }
    if spec.samples_per_class == 0 {
        return Err("si_blurry: samples_per_class must be >= 1".into());
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(spec.seed ^ 0x5B1_0BB1);
    // Random class groups: tasks − 1 distinct cut points in 1..classes.
    let order = permutation(spec.classes, &mut rng);
    let mut cuts: Vec<usize> = permutation(spec.classes - 1, &mut rng)
        .into_iter()
        .take(spec.tasks - 1)
        .map(|c| c + 1)
        .collect();
    cuts.sort_unstable();
    let mut task_classes = Vec::with_capacity(spec.tasks);
    let mut start = 0;
    for &c in cuts.iter().chain(std::iter::once(&spec.classes)) {
        let mut group = order[start..c].to_vec();
        group.sort_unstable();
        task_classes.push(group);
        start = c;
    }
    // Per-class counts, log-uniform within the imbalance factor.
    let half = spec.imbalance.ln() / 2.0;
    let counts: Vec<usize> = (0..spec.classes)
        .map(|_| {
            let r = rng.random_range(-half..=half).exp();
            ((spec.samples_per_class as f64 * r).round() as usize).max(1)
        })
        .collect();
    let max_count = *counts.iter().max().unwrap_or(&1);
    let (pool, test) = blobs(&BlobSpec {
        classes: spec.classes,
        dim: spec.dim,
        train_per_class: max_count,
        test_per_class: spec.test_per_class,
        separation: spec.separation,
        label_noise: 0.0,
        seed: spec.seed,
    })?;
    let home: Vec<usize> = (0..spec.classes)
        .map(|c| task_classes.iter().position(|g| g.contains(&c)).unwrap_or(0))
        .collect();
    // pool is interleaved by class: sample j of class c sits at j * classes + c.
    let mut per_task: Vec<Vec<usize>> = vec![Vec::new(); spec.tasks];
    for c in 0..spec.classes {
        for j in 0..counts[c] {
            let idx = j * spec.classes + c;
            let mut t = home[c];
            if spec.tasks > 1 && rng.random_range(0.0..1.0) < spec.blurry {
                let other = rng.random_range(0..spec.tasks - 1);
                t = if other >= home[c] { other + 1 } else { other };
            }
            per_task[t].push(idx);
        }
    }
    let mut idx = Vec::new();
    let mut task_of = Vec::new();
    let mut task_starts = Vec::with_capacity(spec.tasks + 1);
    for (t, members) in per_task.iter().enumerate() {
        task_starts.push(idx.len());
        let p = permutation(members.len(), &mut rng);
        idx.extend(p.iter().map(|&k| members[k]));
        task_of.extend(std::iter::repeat_n(t, members.len()));
    }
    task_starts.push(idx.len());
    Ok(Stream {
        samples: pool.select(&idx),
        task_of,
        task_classes,
        task_starts,
        test,
    })
}

impl Stream {
    /// Fraction of stream samples whose class is not owned by the task they arrive in.
    pub fn blurry_fraction(&self) -> f64 {
        let off = (0..self.samples.len())
            .filter(|&k| !self.task_classes[self.task_of[k]].contains(&(self.samples.y[k] as usize)))
            .count();
        off as f64 / self.samples.len().max(1) as f64
    }
}
