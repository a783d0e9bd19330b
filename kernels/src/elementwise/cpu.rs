//! CPU elementwise maps. Contiguous inputs take a plain zipped loop (split across threads above
//! `PARALLEL_MIN_ELEMENTS`); strided or broadcast inputs go row by row through
//! [`crate::strided::for_each_row`].

use crate::strided::for_each_row;
use crate::Float;
use rayon::prelude::*;
use std::mem::MaybeUninit;

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
pub fn map<T: Copy + Sync, U: Copy + Send>(x: &[T], f: impl Fn(T) -> U + Sync) -> Vec<U> {
    fill_new(x.len(), |start, out| {
        for (o, &x) in out.iter_mut().zip(&x[start..]) {
            o.write(f(x));
        }
    })
}

/// `out[i] = e^{x[i]}`: the slice form of `exp` (`Float::exp_in_place`: the vectorized
/// `crate::fast_exp` for f32, libm for f64), split across threads like [`map`].
pub fn exp<T: Float>(x: &[T]) -> Vec<T> {
    fill_new(x.len(), |start, out| {
        for (o, &x) in out.iter_mut().zip(&x[start..]) {
            o.write(x);
        }
        // SAFETY: every element of `out` was written just above; MaybeUninit<T> has T's layout.
        let init = unsafe { &mut *(out as *mut [MaybeUninit<T>] as *mut [T]) };
        T::exp_in_place(init);
    })
}

/// `out[i] = f(a[i], b[i])` over two contiguous slices of the same length.
pub fn zip_map<A: Copy + Sync, B: Copy + Sync, U: Copy + Send>(
    a: &[A],
    b: &[B],
    f: impl Fn(A, B) -> U + Sync,
) -> Vec<U> {
    assert_eq!(a.len(), b.len(), "zip_map: callers check lengths");
    fill_new(a.len(), |start, out| {
        for ((o, &a), &b) in out.iter_mut().zip(&a[start..]).zip(&b[start..]) {
            o.write(f(a, b));
        }
    })
}

/// A new vector of `n` elements written by `fill(start, chunk)`, which must initialize every
/// element of `chunk` (the elements `start..start + chunk.len()`). Large outputs are filled in
/// parallel chunks. Writing into uninitialized capacity, rather than `vec![default; n]` and
/// overwriting, saves a full pass over memory: for bandwidth-bound maps that is a third of
/// the traffic.
fn fill_new<U: Copy + Send>(n: usize, fill: impl Fn(usize, &mut [MaybeUninit<U>]) + Sync) -> Vec<U> {
    let mut out: Vec<U> = Vec::with_capacity(n);
    let spare = &mut out.spare_capacity_mut()[..n];
    if n >= PARALLEL_MIN_ELEMENTS {
        spare
            .par_chunks_mut(CHUNK)
            .enumerate()
            .for_each(|(i, chunk)| fill(i * CHUNK, chunk));
    } else {
        fill(0, spare);
    }
    // SAFETY: `fill` initialized every element of `spare`, which is exactly the first n.
    unsafe { out.set_len(n) };
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
/// strides already expanded to `out_shape` (0 on broadcast dimensions). Large outputs with
/// long enough rows are split across threads by rows.
pub fn broadcast_map2<A: Copy + Sync, B: Copy + Sync, U: Copy + Send>(
    out_shape: &[usize],
    a: Operand<A>,
    b: Operand<B>,
    f: impl Fn(A, B) -> U + Sync,
) -> Vec<U> {
    let n: usize = out_shape.iter().product();
    if n == 0 {
        return Vec::new();
    }
    let inner = out_shape.last().copied().unwrap_or(1);
    let rank = out_shape.len();
    let (da, db) = if rank == 0 {
        (0, 0)
    } else {
        (a.strides[rank - 1], b.strides[rank - 1])
    };
    let strides = [a.strides, b.strides];
    let offsets = [a.offset, b.offset];
    // One innermost row; the common stride patterns are specialized so the loop vectorizes.
    let row = |o: &mut [MaybeUninit<U>], sa: usize, sb: usize| match (da, db) {
        (1, 1) => {
            for ((o, &x), &y) in o
                .iter_mut()
                .zip(&a.data[sa..sa + inner])
                .zip(&b.data[sb..sb + inner])
            {
                o.write(f(x, y));
            }
        }
        (1, 0) => {
            let y = b.data[sb];
            for (o, &x) in o.iter_mut().zip(&a.data[sa..sa + inner]) {
                o.write(f(x, y));
            }
        }
        (0, 1) => {
            let x = a.data[sa];
            for (o, &y) in o.iter_mut().zip(&b.data[sb..sb + inner]) {
                o.write(f(x, y));
            }
        }
        _ => {
            for (j, o) in o.iter_mut().enumerate() {
                o.write(f(a.data[sa + j * da], b.data[sb + j * db]));
            }
        }
    };
    let mut out: Vec<U> = Vec::with_capacity(n);
    let spare = &mut out.spare_capacity_mut()[..n];
    if n >= PARALLEL_MIN_ELEMENTS && inner >= 64 {
        spare.par_chunks_mut(inner).enumerate().for_each(|(r, o)| {
            let [sa, sb] = crate::strided::row_start(out_shape, strides, offsets, r);
            row(o, sa, sb);
        });
    } else {
        for_each_row(out_shape, strides, offsets, |r, [sa, sb], _| {
            row(&mut spare[r * inner..(r + 1) * inner], sa, sb)
        });
    }
    // SAFETY: every row of the output, hence every element, was written above.
    unsafe { out.set_len(n) };
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
