//! Data for convex ReLU training: a CSV reader with line-numbered errors, and the synthetic
//! teacher-network data set of the demo.

use std::fmt;

/// `n` samples of `d` features (row-major `x`, bias column included when asked for) and a
/// scalar target each.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    pub x: Vec<f64>,
    pub y: Vec<f64>,
    pub n: usize,
    pub d: usize,
    /// Whether the last column of `x` is the constant 1 added by [`Dataset::with_bias`]. The
    /// robust program leaves it out of the perturbation (an attacker moves the input, not the
    /// bias).
    pub has_bias: bool,
}

/// A CSV problem, with the 1-based line number where it was found.
#[derive(Clone, Debug, PartialEq)]
pub struct DataError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.message)
        } else {
            write!(f, "line {}: {}", self.line, self.message)
        }
    }
}

impl std::error::Error for DataError {}

fn err(line: usize, message: impl Into<String>) -> DataError {
    DataError {
        line,
        message: message.into(),
    }
}

impl Dataset {
    /// Builds a data set, checking sizes and that every value is finite.
    pub fn new(x: Vec<f64>, y: Vec<f64>, d: usize) -> Result<Dataset, DataError> {
        let n = y.len();
        if n == 0 || d == 0 || x.len() != n * d {
            return Err(err(
                0,
                format!("{} inputs do not form {n} rows of {d} features", x.len()),
            ));
        }
        if let Some(i) = x.iter().chain(&y).position(|v| !v.is_finite()) {
            return Err(err(0, format!("value {i} is not finite")));
        }
        Ok(Dataset {
            x,
            y,
            n,
            d,
            has_bias: false,
        })
    }

    /// Parses CSV text: one sample per line, comma-separated numbers, the last column the
    /// target. Blank lines are skipped. A first line whose cells are all non-numeric is a header;
    /// any other non-numeric cell, a row with a different number of cells (ragged), a NaN or an
    /// infinity, or a file with no data rows is an error naming the line.
    pub fn parse_csv(text: &str) -> Result<Dataset, DataError> {
        let mut x = Vec::new();
        let mut y = Vec::new();
        let mut cols: Option<(usize, usize)> = None; // (cells per row, line that fixed it)
        let mut seen_content = false;
        for (idx, raw) in text.lines().enumerate() {
            let line = idx + 1;
            let row = raw.trim();
            if row.is_empty() {
                continue;
            }
            let cells: Vec<&str> = row.split(',').map(str::trim).collect();
            let first = !seen_content;
            seen_content = true;
            if first && cells.iter().all(|c| c.parse::<f64>().is_err()) {
                continue; // header
            }
            match cols {
                None => {
                    if cells.len() < 2 {
                        return Err(err(
                            line,
                            "need at least one feature column and the target column",
                        ));
                    }
                    cols = Some((cells.len(), line));
                }
                Some((want, at)) if cells.len() != want => {
                    return Err(err(
                        line,
                        format!("ragged row: {} cells, but line {at} has {want}", cells.len()),
                    ));
                }
                Some(_) => {}
            }
            for (c, cell) in cells.iter().enumerate() {
                let v: f64 = cell
                    .parse()
                    .map_err(|_| err(line, format!("column {}: `{cell}` is not a number", c + 1)))?;
                if !v.is_finite() {
                    return Err(err(line, format!("column {}: `{cell}` is not finite", c + 1)));
                }
                if c + 1 == cells.len() {
                    y.push(v);
                } else {
                    x.push(v);
                }
            }
        }
        let Some((width, _)) = cols else {
            return Err(err(0, "the file has no data rows"));
        };
        let mut ds = Dataset::new(x, y, width - 1)?;
        ds.has_bias = false;
        Ok(ds)
    }

    /// Reads and parses a CSV file ([`Dataset::parse_csv`]).
    pub fn read_csv(path: &std::path::Path) -> Result<Dataset, DataError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| err(0, format!("cannot read {}: {e}", path.display())))?;
        Dataset::parse_csv(&text)
    }

    /// The same data with a constant-1 column appended, so that each neuron gets a bias
    /// (regularized like the other first-layer weights, as in Pilanci & Ergen).
    pub fn with_bias(&self) -> Dataset {
        let mut x = Vec::with_capacity(self.n * (self.d + 1));
        for row in self.x.chunks(self.d) {
            x.extend_from_slice(row);
            x.push(1.0);
        }
        Dataset {
            x,
            y: self.y.clone(),
            n: self.n,
            d: self.d + 1,
            has_bias: true,
        }
    }

    pub fn row(&self, k: usize) -> &[f64] {
        &self.x[k * self.d..(k + 1) * self.d]
    }

    /// Numerical rank of `x` (Gaussian elimination with partial pivoting, relative tolerance
    /// 1e-10): exact pattern enumeration needs full column rank.
    pub fn rank(&self) -> usize {
        let (n, d) = (self.n, self.d);
        let mut a = self.x.clone();
        let scale = a
            .iter()
            .fold(0.0f64, |m, v| m.max(v.abs()))
            .max(f64::MIN_POSITIVE);
        let mut rank = 0;
        for col in 0..d {
            let Some(piv) = (rank..n).max_by(|&i, &j| a[i * d + col].abs().total_cmp(&a[j * d + col].abs()))
            else {
                break;
            };
            if a[piv * d + col].abs() <= 1e-10 * scale {
                continue;
            }
            for j in 0..d {
                a.swap(rank * d + j, piv * d + j);
            }
            for i in rank + 1..n {
                let f = a[i * d + col] / a[rank * d + col];
                for j in col..d {
                    a[i * d + j] -= f * a[rank * d + j];
                }
            }
            rank += 1;
        }
        rank
    }
}

/// The demo's data: `n` inputs uniform in [-1, 1]^`features`, targets from a fixed teacher
/// two-layer ReLU network of `teacher_width` neurons plus Gaussian noise of std `noise`.
/// Deterministic in `seed`. No bias column (add one with [`Dataset::with_bias`]).
pub fn teacher_data(n: usize, features: usize, teacher_width: usize, noise: f64, seed: u64) -> Dataset {
    use rand::{RngExt, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut gauss = super::patterns::Gaussian::default();
    let w: Vec<f64> = (0..teacher_width * (features + 1))
        .map(|_| gauss.sample(&mut rng))
        .collect();
    let a: Vec<f64> = (0..teacher_width).map(|_| gauss.sample(&mut rng)).collect();
    let x: Vec<f64> = (0..n * features).map(|_| rng.random_range(-1.0..1.0)).collect();
    let y = (0..n)
        .map(|k| {
            let xk = &x[k * features..(k + 1) * features];
            let f: f64 = (0..teacher_width)
                .map(|j| {
                    let wj = &w[j * (features + 1)..(j + 1) * (features + 1)];
                    let pre = wj[features] + xk.iter().zip(wj).map(|(a, b)| a * b).sum::<f64>();
                    a[j] * pre.max(0.0)
                })
                .sum();
            f + noise * gauss.sample(&mut rng)
        })
        .collect();
    Dataset {
        x,
        y,
        n,
        d: features,
        has_bias: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_header_and_rows() {
        let ds = Dataset::parse_csv("a, b, target\n1, 2, 3\n\n4,5,6\n").unwrap();
        assert_eq!((ds.n, ds.d), (2, 2));
        assert_eq!(ds.x, vec![1.0, 2.0, 4.0, 5.0]);
        assert_eq!(ds.y, vec![3.0, 6.0]);
        let b = ds.with_bias();
        assert_eq!(b.x, vec![1.0, 2.0, 1.0, 4.0, 5.0, 1.0]);
        assert_eq!(b.rank(), 2);
    }

    #[test]
    fn bad_input_names_the_line() {
        let cases = [
            ("1,2,3\n4,5\n", 2, "ragged"),
            ("1,2,3\n4,x,6\n", 2, "not a number"),
            ("1,2,3\n\n4,NaN,6\n", 3, "not finite"),
            ("1,2,3\n4,inf,6\n", 2, "not finite"),
            ("1,2\n3,4\n5,6,\n", 3, "ragged"),
        ];
        for (text, line, what) in cases {
            let e = Dataset::parse_csv(text).unwrap_err();
            assert_eq!(e.line, line, "{text:?}: {e}");
            assert!(e.to_string().contains(what), "{text:?}: {e}");
            assert!(e.to_string().starts_with(&format!("line {line}:")), "{e}");
        }
        for empty in ["", "\n\n", "a,b,c\n"] {
            let e = Dataset::parse_csv(empty).unwrap_err();
            assert!(e.to_string().contains("no data rows"), "{e}");
        }
        assert!(Dataset::parse_csv("1\n2\n")
            .unwrap_err()
            .to_string()
            .contains("line 1"));
    }
}
