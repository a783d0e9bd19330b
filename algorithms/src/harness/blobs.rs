//! H1: Gaussian-blob classification and class-incremental "split-blobs".
//!
//! Class c has a center μ_c ~ N(0, separation²·I_dim); a sample of class c is
//! μ_c + N(0, I_dim). Separation sets how much the classes overlap (about 2–3 gives a problem a
//! small MLP solves well but not perfectly in 16 dimensions). Train and test samples come from
//! the same centers with independent noise. [`class_incremental`] splits the classes into tasks
//! of consecutive class ids, the usual split-MNIST layout.

use autograd::{Device, Tensor};
use rand::{Rng, RngExt, SeedableRng};

use crate::convex_relu::patterns::Gaussian;

/// What to generate.
#[derive(Clone, Debug, PartialEq)]
pub struct BlobSpec {
    pub classes: usize,
    pub dim: usize,
    pub train_per_class: usize,
    pub test_per_class: usize,
    /// Standard deviation of the class centers (the within-class noise has std 1).
    pub separation: f64,
    /// Fraction of training labels replaced by a uniformly random other class (H6); 0 for H1.
    pub label_noise: f64,
    pub seed: u64,
}

impl Default for BlobSpec {
    /// METHODS.md's split-blobs: 10 classes in 16 dimensions.
    fn default() -> Self {
        BlobSpec {
            classes: 10,
            dim: 16,
            train_per_class: 100,
            test_per_class: 100,
            separation: 1.0,
            label_noise: 0.0,
            seed: 0,
        }
    }
}

/// Labelled points, row-major `n × dim`.
#[derive(Clone, Debug, PartialEq)]
pub struct Blobs {
    pub x: Vec<f32>,
    pub y: Vec<i64>,
    pub dim: usize,
    pub classes: usize,
}

impl Blobs {
    pub fn len(&self) -> usize {
        self.y.len()
    }

    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }

    pub fn row(&self, k: usize) -> &[f32] {
        &self.x[k * self.dim..(k + 1) * self.dim]
    }

    /// The samples at `idx`, in that order.
    pub fn select(&self, idx: &[usize]) -> Blobs {
        let mut x = Vec::with_capacity(idx.len() * self.dim);
        for &k in idx {
            x.extend_from_slice(self.row(k));
        }
        Blobs {
            x,
            y: idx.iter().map(|&k| self.y[k]).collect(),
            dim: self.dim,
            classes: self.classes,
        }
    }

    /// The samples whose label is in `classes`, in their original order.
    pub fn of_classes(&self, classes: &[usize]) -> Blobs {
        let idx: Vec<usize> = (0..self.len())
            .filter(|&k| classes.contains(&(self.y[k] as usize)))
            .collect();
        self.select(&idx)
    }

    /// `self` followed by `other` (same dim and class count).
    pub fn concat(&self, other: &Blobs) -> Result<Blobs, String> {
        if self.dim != other.dim || self.classes != other.classes {
            return Err(format!(
                "concat: dims {} vs {}, classes {} vs {}",
                self.dim, other.dim, self.classes, other.classes
            ));
        }
        let mut out = self.clone();
        out.x.extend_from_slice(&other.x);
        out.y.extend_from_slice(&other.y);
        Ok(out)
    }

    /// `(x [n, dim] f32, y [n] i64)` on `device`.
    pub fn tensors(&self, device: Device) -> Result<(Tensor, Tensor), String> {
        let x =
            Tensor::from_vec(self.x.clone(), &[self.len(), self.dim], device).map_err(|e| e.to_string())?;
        let y = Tensor::from_vec(self.y.clone(), &[self.len()], device).map_err(|e| e.to_string())?;
        Ok((x, y))
    }
}

/// `(train, test)` for `spec`; errors on an empty or ill-formed spec.
pub fn blobs(spec: &BlobSpec) -> Result<(Blobs, Blobs), String> {
    if spec.classes < 2 || spec.dim == 0 || spec.train_per_class == 0 {
        return Err(format!(
            "blobs: need >= 2 classes, dim >= 1 and >= 1 training sample per class, got {spec:?}"
        ));
    }
    if !(spec.separation.is_finite() && spec.separation > 0.0 && (0.0..1.0).contains(&spec.label_noise)) {
        return Err(format!(
            "blobs: separation must be > 0 and label_noise in [0, 1), got {} and {}",
            spec.separation, spec.label_noise
        ));
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(spec.seed);
    let mut g = Gaussian::default();
    let centers: Vec<f64> = (0..spec.classes * spec.dim)
        .map(|_| spec.separation * g.sample(&mut rng))
        .collect();
    let mut draw = |per_class: usize, rng: &mut rand::rngs::StdRng| {
        let mut out = Blobs {
            x: Vec::with_capacity(per_class * spec.classes * spec.dim),
            y: Vec::with_capacity(per_class * spec.classes),
            dim: spec.dim,
            classes: spec.classes,
        };
        // Classes interleaved (0, 1, …, C−1, 0, 1, …) so any prefix is balanced.
        for _ in 0..per_class {
            for c in 0..spec.classes {
                let mu = &centers[c * spec.dim..(c + 1) * spec.dim];
                out.x.extend(mu.iter().map(|m| (m + g.sample(rng)) as f32));
                out.y.push(c as i64);
            }
        }
        out
    };
    let mut train = draw(spec.train_per_class, &mut rng);
    let test = draw(spec.test_per_class, &mut rng);
    if spec.label_noise > 0.0 {
        for y in &mut train.y {
            if rng.random_range(0.0..1.0) < spec.label_noise {
                let shift = rng.random_range(1..spec.classes) as i64;
                *y = (*y + shift) % spec.classes as i64;
            }
        }
    }
    Ok((train, test))
}

/// Class ids split into `tasks` tasks of consecutive ids (`classes` must divide evenly).
pub fn class_incremental(classes: usize, tasks: usize) -> Result<Vec<Vec<usize>>, String> {
    if tasks == 0 || classes == 0 || !classes.is_multiple_of(tasks) {
        return Err(format!(
            "class_incremental: {classes} classes do not split into {tasks} equal tasks"
        ));
    }
    let per = classes / tasks;
    Ok((0..tasks).map(|t| (t * per..(t + 1) * per).collect()).collect())
}

/// A uniformly random permutation of `0..n` (Fisher–Yates), for shuffling minibatches.
pub fn permutation<R: Rng + ?Sized>(n: usize, rng: &mut R) -> Vec<usize> {
    let mut p: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = rng.random_range(0..=i);
        p.swap(i, j);
    }
    p
}
