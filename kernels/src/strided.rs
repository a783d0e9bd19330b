//! Walking strided layouts: the one loop nest every CPU kernel that reads a view or a broadcast
//! operand goes through.
//!
//! A layout is `(shape, strides, offset)` in elements; broadcast dimensions have stride 0.
//! `for_each_row` visits the output in row-major order one innermost row at a time, handing the
//! callback each operand's starting offset for that row and its innermost stride, so the inner
//! loop is a plain indexed loop the compiler can vectorize when the strides are 1 or 0.

/// Visit every innermost row of `shape` in row-major order.
///
/// For each row, `f(row_index, starts, inner_strides)` gets the row's position (row r covers output
/// elements `r * inner_len .. (r + 1) * inner_len`, with `inner_len = shape.last()`), and for each of
/// the `N` operands the offset of the row's first element and the stride along the row.
/// A rank-0 shape is one row of length 1. A shape with a zero dimension has no rows.
pub fn for_each_row<const N: usize>(
    shape: &[usize],
    strides: [&[usize]; N],
    offsets: [usize; N],
    mut f: impl FnMut(usize, [usize; N], [usize; N]),
) {
    let rank = shape.len();
    if shape.contains(&0) {
        return;
    }
    if rank == 0 {
        f(0, offsets, [0; N]);
        return;
    }
    let inner_strides: [usize; N] = std::array::from_fn(|i| strides[i][rank - 1]);
    let outer = &shape[..rank - 1];
    let rows: usize = outer.iter().product();
    let mut index = vec![0usize; outer.len()];
    let mut starts = offsets;
    for row in 0..rows {
        f(row, starts, inner_strides);
        // Advance the multi-index like an odometer, updating each operand's start incrementally.
        for d in (0..outer.len()).rev() {
            index[d] += 1;
            for (start, s) in starts.iter_mut().zip(strides.iter()) {
                *start += s[d];
            }
            if index[d] < outer[d] {
                break;
            }
            for (start, s) in starts.iter_mut().zip(strides.iter()) {
                *start -= s[d] * outer[d];
            }
            index[d] = 0;
        }
    }
}

/// Each operand's offset of the first element of innermost row `row` (row-major over
/// `shape[..rank-1]`), computed directly rather than by walking: lets threads start anywhere.
pub fn row_start<const N: usize>(
    shape: &[usize],
    strides: [&[usize]; N],
    offsets: [usize; N],
    row: usize,
) -> [usize; N] {
    let mut starts = offsets;
    let mut rest = row;
    for d in (0..shape.len().saturating_sub(1)).rev() {
        let i = rest % shape[d];
        rest /= shape[d];
        for (start, s) in starts.iter_mut().zip(strides.iter()) {
            *start += i * s[d];
        }
    }
    starts
}

/// Row-major contiguous strides for `shape`.
pub fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![0; shape.len()];
    let mut acc = 1;
    for d in (0..shape.len()).rev() {
        strides[d] = acc;
        acc *= shape[d];
    }
    strides
}

/// Copy a strided view of `src` into a new contiguous vector.
pub fn copy_to_contiguous<T: Copy>(src: &[T], shape: &[usize], strides: &[usize], offset: usize) -> Vec<T> {
    let n: usize = shape.iter().product();
    let mut out = Vec::with_capacity(n);
    let inner = shape.last().copied().unwrap_or(1);
    for_each_row(shape, [strides], [offset], |_, [start], [step]| {
        if step == 1 {
            out.extend_from_slice(&src[start..start + inner]);
        } else {
            out.extend((0..inner).map(|j| src[start + j * step]));
        }
    });
    out
}

/// Write the contiguous `src` into the strided view `(shape, strides, offset)` of `dst`.
/// The view must not overlap itself (no zero strides), which the callers guarantee.
pub fn copy_from_contiguous<T: Copy>(
    src: &[T],
    dst: &mut [T],
    shape: &[usize],
    strides: &[usize],
    offset: usize,
) {
    let inner = shape.last().copied().unwrap_or(1);
    for_each_row(shape, [strides], [offset], |row, [start], [step]| {
        let s = &src[row * inner..(row + 1) * inner];
        for (j, v) in s.iter().enumerate() {
            dst[start + j * step] = *v;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transposed_copy() {
        // 2x3 row-major, viewed as its 3x2 transpose.
        let src = [0, 1, 2, 3, 4, 5];
        let out = copy_to_contiguous(&src, &[3, 2], &[1, 3], 0);
        assert_eq!(out, vec![0, 3, 1, 4, 2, 5]);
    }

    #[test]
    fn broadcast_and_offset() {
        let src = [9, 1, 2, 3];
        // Row [1, 2, 3] repeated twice via a zero stride.
        let out = copy_to_contiguous(&src, &[2, 3], &[0, 1], 1);
        assert_eq!(out, vec![1, 2, 3, 1, 2, 3]);
        assert!(copy_to_contiguous(&src, &[0, 3], &[3, 1], 0).is_empty());
        assert_eq!(copy_to_contiguous(&src, &[], &[], 2), vec![2]);
    }

    #[test]
    fn scatter_round_trip() {
        let mut dst = vec![0; 12];
        // Write a 2x2 block at rows 1..3, cols 1..3 of a 3x4 matrix.
        copy_from_contiguous(&[1, 2, 3, 4], &mut dst, &[2, 2], &[4, 1], 5);
        assert_eq!(dst, vec![0, 0, 0, 0, 0, 1, 2, 0, 0, 3, 4, 0]);
    }
}
