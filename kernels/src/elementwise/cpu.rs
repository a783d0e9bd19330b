//! CPU elementwise maps. Contiguous inputs take a plain zipped loop (split across threads above
//! `PARALLEL_MIN_ELEMENTS`); strided or broadcast inputs go row by row through
//! [`crate::strided::for_each_row`].

use crate::strided::for_each_row;
use rayon::prelude::*;

/// Below this many elements a map runs on one thread: spawning costs more than it saves.
pub const PARALLEL_MIN_ELEMENTS: usize = 1 << 16;
/// Work unit handed to each rayon task.
const CHUNK: usize = 1 << 14;

/// One operand of a strided map: element `i` of the (broadcast) output reads
/// `data[offset + Σ index_d * strides[d]]`.
#[derive(Clone, Copy)]
pub struct Operand<'a, T> {
    pub data: &'a [T],
    pub strides: &'a [usize],
    pub offset: usize,
}

/// `out[i] = f(x[i])` over a contiguous slice.
pub fn map<T: Copy + Sync, U: Copy + Send + Default>(x: &[T], f: impl Fn(T) -> U + Sync) -> Vec<U> {
    let mut out = vec![U::default(); x.len()];
    if x.len() >= PARALLEL_MIN_ELEMENTS {
        out.par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK))
            .for_each(|(o, x)| {
                for (o, &x) in o.iter_mut().zip(x) {
                    *o = f(x);
                }
            });
    } else {
        for (o, &x) in out.iter_mut().zip(x) {
            *o = f(x);
        }
    }
    out
}

/// `out[i] = f(a[i], b[i])` over two contiguous slices of the same length.
pub fn zip_map<A: Copy + Sync, B: Copy + Sync, U: Copy + Send + Default>(
    a: &[A],
    b: &[B],
    f: impl Fn(A, B) -> U + Sync,
) -> Vec<U> {
    assert_eq!(a.len(), b.len(), "zip_map: callers check lengths");
    let mut out = vec![U::default(); a.len()];
    if a.len() >= PARALLEL_MIN_ELEMENTS {
        out.par_chunks_mut(CHUNK)
            .zip(a.par_chunks(CHUNK).zip(b.par_chunks(CHUNK)))
            .for_each(|(o, (a, b))| {
                for ((o, &a), &b) in o.iter_mut().zip(a).zip(b) {
                    *o = f(a, b);
                }
            });
    } else {
        for ((o, &a), &b) in out.iter_mut().zip(a).zip(b) {
            *o = f(a, b);
        }
    }
    out
}

/// `a[i] = f(a[i], b[i])` in place.
pub fn zip_apply<A: Copy + Send + Sync, B: Copy + Sync>(a: &mut [A], b: &[B], f: impl Fn(A, B) -> A + Sync) {
    assert_eq!(a.len(), b.len(), "zip_apply: callers check lengths");
    if a.len() >= PARALLEL_MIN_ELEMENTS {
        a.par_chunks_mut(CHUNK)
            .zip(b.par_chunks(CHUNK))
            .for_each(|(a, b)| {
                for (a, &b) in a.iter_mut().zip(b) {
                    *a = f(*a, b);
                }
            });
    } else {
        for (a, &b) in a.iter_mut().zip(b) {
            *a = f(*a, b);
        }
    }
}

/// Broadcast binary map: `out[idx] = f(a[idx], b[idx])` over `out_shape`, with each operand's
/// strides already expanded to `out_shape` (0 on broadcast dimensions).
pub fn broadcast_map2<A: Copy + Sync, B: Copy + Sync, U: Copy + Send + Default>(
    out_shape: &[usize],
    a: Operand<A>,
    b: Operand<B>,
    f: impl Fn(A, B) -> U + Sync,
) -> Vec<U> {
    let n: usize = out_shape.iter().product();
    let mut out = vec![U::default(); n];
    let inner = out_shape.last().copied().unwrap_or(1);
    for_each_row(
        out_shape,
        [a.strides, b.strides],
        [a.offset, b.offset],
        |row, [sa, sb], [da, db]| {
            let o = &mut out[row * inner..(row + 1) * inner];
            // Specialize the common stride patterns so the inner loop vectorizes.
            match (da, db) {
                (1, 1) => {
                    for ((o, &x), &y) in o
                        .iter_mut()
                        .zip(&a.data[sa..sa + inner])
                        .zip(&b.data[sb..sb + inner])
                    {
                        *o = f(x, y);
                    }
                }
                (1, 0) => {
                    let y = b.data[sb];
                    for (o, &x) in o.iter_mut().zip(&a.data[sa..sa + inner]) {
                        *o = f(x, y);
                    }
                }
                (0, 1) => {
                    let x = a.data[sa];
                    for (o, &y) in o.iter_mut().zip(&b.data[sb..sb + inner]) {
                        *o = f(x, y);
                    }
                }
                _ => {
                    for (j, o) in o.iter_mut().enumerate() {
                        *o = f(a.data[sa + j * da], b.data[sb + j * db]);
                    }
                }
            }
        },
    );
    out
}

/// Broadcast ternary map, used by `where(cond, a, b)`.
pub fn broadcast_map3<A: Copy, B: Copy, C: Copy, U: Copy + Default>(
    out_shape: &[usize],
    a: Operand<A>,
    b: Operand<B>,
    c: Operand<C>,
    f: impl Fn(A, B, C) -> U,
) -> Vec<U> {
    let n: usize = out_shape.iter().product();
    let mut out = vec![U::default(); n];
    let inner = out_shape.last().copied().unwrap_or(1);
    for_each_row(
        out_shape,
        [a.strides, b.strides, c.strides],
        [a.offset, b.offset, c.offset],
        |row, [sa, sb, sc], [da, db, dc]| {
            let o = &mut out[row * inner..(row + 1) * inner];
            for (j, o) in o.iter_mut().enumerate() {
                *o = f(a.data[sa + j * da], b.data[sb + j * db], c.data[sc + j * dc]);
            }
        },
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_row_and_column() {
        // [2, 1] + [1, 3] -> [2, 3]
        let a = [10.0f32, 20.0];
        let b = [1.0f32, 2.0, 3.0];
        let out = broadcast_map2(
            &[2, 3],
            Operand {
                data: &a,
                strides: &[1, 0],
                offset: 0,
            },
            Operand {
                data: &b,
                strides: &[0, 1],
                offset: 0,
            },
            |x, y| x + y,
        );
        assert_eq!(out, vec![11.0, 12.0, 13.0, 21.0, 22.0, 23.0]);
    }

    #[test]
    fn parallel_map_matches_serial() {
        let x: Vec<f64> = (0..PARALLEL_MIN_ELEMENTS * 3 + 7).map(|i| i as f64).collect();
        let y = map(&x, |v| v * 2.0);
        assert!(y.iter().enumerate().all(|(i, &v)| v == 2.0 * i as f64));
        let z = zip_map(&x, &y, |a, b| b - a);
        assert_eq!(z, x);
    }
}
