//! Shapes, axes and numpy broadcasting.

use crate::{Error, Result};
use smallvec::SmallVec;

/// Dimensions, outermost first. Most tensors have rank <= 6, which fits inline.
pub type Shape = SmallVec<[usize; 6]>;

pub fn shape_of(dims: &[usize]) -> Shape {
    Shape::from_slice(dims)
}

pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// Resolve a possibly negative axis (-1 is the last) against `rank`.
pub fn normalize_axis(op: &'static str, axis: isize, rank: usize) -> Result<usize> {
    let r = rank as isize;
    let a = if axis < 0 { axis + r } else { axis };
    if a < 0 || a >= r {
        return Err(Error::BadAxis { op, axis, rank });
    }
    Ok(a as usize)
}

/// Resolve a list of axes; repeated axes are an error. Returns them sorted.
pub fn normalize_axes(op: &'static str, axes: &[isize], rank: usize) -> Result<Vec<usize>> {
    let mut out = Vec::with_capacity(axes.len());
    for &a in axes {
        let n = normalize_axis(op, a, rank)?;
        if out.contains(&n) {
            return Err(Error::BadAxis { op, axis: a, rank });
        }
        out.push(n);
    }
    out.sort_unstable();
    Ok(out)
}

/// The numpy broadcast of two shapes: align on the right; each pair of dims must be equal or
/// one of them 1.
pub fn broadcast_shapes(op: &'static str, a: &[usize], b: &[usize]) -> Result<Shape> {
    let rank = a.len().max(b.len());
    let mut out = Shape::with_capacity(rank);
    for i in 0..rank {
        let da = if i + a.len() >= rank {
            a[i + a.len() - rank]
        } else {
            1
        };
        let db = if i + b.len() >= rank {
            b[i + b.len() - rank]
        } else {
            1
        };
        let d = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => {
                return Err(Error::ShapeMismatch {
                    op,
                    shapes: vec![shape_of(a), shape_of(b)],
                    reason: format!("cannot broadcast (dim {da} vs {db})"),
                })
            }
        };
        out.push(d);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasting_rules() {
        assert_eq!(
            broadcast_shapes("t", &[2, 1, 3], &[4, 1]).unwrap().as_slice(),
            &[2, 4, 3]
        );
        assert_eq!(broadcast_shapes("t", &[], &[3]).unwrap().as_slice(), &[3]);
        assert_eq!(
            broadcast_shapes("t", &[0, 1], &[1, 5]).unwrap().as_slice(),
            &[0, 5]
        );
        assert!(broadcast_shapes("t", &[2, 3], &[3, 2]).is_err());
    }

    #[test]
    fn axes() {
        assert_eq!(normalize_axis("t", -1, 3).unwrap(), 2);
        assert!(normalize_axis("t", 3, 3).is_err());
        assert!(normalize_axis("t", 0, 0).is_err());
        assert!(normalize_axes("t", &[1, -2], 3).is_err());
        assert_eq!(normalize_axes("t", &[2, 0], 3).unwrap(), vec![0, 2]);
    }
}
