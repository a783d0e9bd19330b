//! CPU indexing kernels.
//!
//! `index_select`/`index_add` view the buffer as `[outer, size, inner]` around the indexed axis,
//! so each selected slice is a contiguous run of `inner` elements (a whole row for embedding
//! lookups) copied or added with one slice operation.
//!
//! `gather`/`scatter_add` pair an index tensor with a data tensor of the same rank whose other
//! dimensions may be larger (PyTorch semantics: only the leading `index_shape[d]` positions of
//! each dimension take part). They walk the index's shape with [`for_each_row`], reading the data
//! through its contiguous strides with the indexed axis's stride set to 0, so the walk yields the
//! offset of the element at index 0 and the index value adds `idx · stride[axis]`.

use super::{check_indices, IndexError};
use crate::strided::{contiguous_strides, for_each_row};
use crate::Float;

/// `out[o, j, k] = src[o, indices[j], k]` for `src` of shape `[outer, size, inner]`; the output
/// has shape `[outer, indices.len(), inner]`.
pub fn index_select<T: Copy>(
    src: &[T],
    outer: usize,
    size: usize,
    inner: usize,
    indices: &[i64],
) -> Result<Vec<T>, IndexError> {
    assert_eq!(
        src.len(),
        outer * size * inner,
        "index_select: callers check shapes"
    );
    check_indices(indices, size)?;
    let block = size * inner;
    let mut out = Vec::with_capacity(outer * indices.len() * inner);
    // An empty block (size 0, so no valid index; or inner 0) means an empty output.
    if block == 0 {
        return Ok(out);
    }
    for b in src.chunks_exact(block) {
        for &i in indices {
            let i = i as usize;
            out.extend_from_slice(&b[i * inner..(i + 1) * inner]);
        }
    }
    Ok(out)
}

/// `dst[o, indices[j], k] += src[o, j, k]`: the backward of [`index_select`]. Repeated indices
/// accumulate. `dst` is untouched if any index is out of range.
pub fn index_add<T: Float>(
    dst: &mut [T],
    outer: usize,
    size: usize,
    inner: usize,
    indices: &[i64],
    src: &[T],
) -> Result<(), IndexError> {
    let n = indices.len();
    assert_eq!(dst.len(), outer * size * inner, "index_add: callers check shapes");
    assert_eq!(src.len(), outer * n * inner, "index_add: callers check shapes");
    check_indices(indices, size)?;
    if inner == 0 {
        return Ok(());
    }
    for o in 0..outer {
        for (j, &i) in indices.iter().enumerate() {
            let d = (o * size + i as usize) * inner;
            let s = (o * n + j) * inner;
            for (d, &s) in dst[d..d + inner].iter_mut().zip(&src[s..s + inner]) {
                *d += s;
            }
        }
    }
    Ok(())
}

/// Panics unless `index_shape` fits `data_shape` for gather/scatter along `axis`: same rank, and
/// `index_shape[d] <= data_shape[d]` on every dimension except (when `free_axis`) `axis`.
fn assert_fits(op: &str, data_shape: &[usize], index_shape: &[usize], axis: usize, free_axis: bool) {
    assert!(
        data_shape.len() == index_shape.len()
            && axis < data_shape.len()
            && data_shape
                .iter()
                .zip(index_shape)
                .enumerate()
                .all(|(d, (&n, &m))| (free_axis && d == axis) || m <= n),
        "{op}: index shape {index_shape:?} does not fit {data_shape:?} along axis {axis}: callers check shapes"
    );
}

/// PyTorch `torch.gather`: for `index` of shape `index_shape` (same rank as `src`),
/// `out[p] = src[p with coordinate axis replaced by index[p]]`. The output has `index_shape`.
pub fn gather<T: Copy>(
    src: &[T],
    src_shape: &[usize],
    axis: usize,
    index: &[i64],
    index_shape: &[usize],
) -> Result<Vec<T>, IndexError> {
    assert_fits("gather", src_shape, index_shape, axis, true);
    assert_eq!(src.len(), src_shape.iter().product::<usize>());
    assert_eq!(index.len(), index_shape.iter().product::<usize>());
    check_indices(index, src_shape[axis])?;
    let mut strides = contiguous_strides(src_shape);
    let axis_stride = std::mem::replace(&mut strides[axis], 0);
    let inner = *index_shape.last().expect("rank >= 1 (asserted)");
    let mut out = Vec::with_capacity(index.len());
    for_each_row(index_shape, [&strides], [0], |row, [start], [step]| {
        let idx = &index[row * inner..(row + 1) * inner];
        out.extend(
            idx.iter()
                .enumerate()
                .map(|(j, &i)| src[start + j * step + i as usize * axis_stride]),
        );
    });
    Ok(out)
}

/// PyTorch `Tensor.scatter_add_`: for every position `p` of `index_shape`,
/// `dst[p with coordinate axis replaced by index[p]] += src[p]`. `src` has the same rank and
/// is at least `index_shape` in every dimension. Repeated targets accumulate; `dst` is
/// untouched if any index is out of range.
pub fn scatter_add<T: Float>(
    dst: &mut [T],
    dst_shape: &[usize],
    axis: usize,
    index: &[i64],
    index_shape: &[usize],
    src: &[T],
    src_shape: &[usize],
) -> Result<(), IndexError> {
    assert_fits("scatter_add", dst_shape, index_shape, axis, true);
    assert_fits("scatter_add", src_shape, index_shape, axis, false);
    assert_eq!(dst.len(), dst_shape.iter().product::<usize>());
    assert_eq!(src.len(), src_shape.iter().product::<usize>());
    assert_eq!(index.len(), index_shape.iter().product::<usize>());
    check_indices(index, dst_shape[axis])?;
    let mut dst_strides = contiguous_strides(dst_shape);
    let axis_stride = std::mem::replace(&mut dst_strides[axis], 0);
    let src_strides = contiguous_strides(src_shape);
    let inner = *index_shape.last().expect("rank >= 1 (asserted)");
    for_each_row(
        index_shape,
        [&dst_strides, &src_strides],
        [0, 0],
        |row, [d0, s0], [dstep, sstep]| {
            for (j, &i) in index[row * inner..(row + 1) * inner].iter().enumerate() {
                dst[d0 + j * dstep + i as usize * axis_stride] += src[s0 + j * sstep];
            }
        },
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_select_middle_axis() {
        // [2, 3, 2]: element (o, a, k) = 100o + 10a + k.
        let src: Vec<i64> = (0..12)
            .map(|i| (i / 6) * 100 + (i / 2 % 3) * 10 + i % 2)
            .collect();
        let out = index_select(&src, 2, 3, 2, &[2, 0, 2]).unwrap();
        assert_eq!(out, vec![20, 21, 0, 1, 20, 21, 120, 121, 100, 101, 120, 121]);
        assert_eq!(index_select(&src, 2, 3, 2, &[]).unwrap(), Vec::<i64>::new());
    }

    #[test]
    fn index_add_accumulates_repeats() {
        let mut dst = vec![0.0f64; 6]; // [1, 3, 2]
        index_add(&mut dst, 1, 3, 2, &[1, 1, 0], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
        assert_eq!(dst, vec![5.0, 6.0, 4.0, 6.0, 0.0, 0.0]);
    }

    #[test]
    fn bad_indices_are_errors_and_leave_dst_untouched() {
        let src = [1.0f32, 2.0, 3.0];
        let err = index_select(&src, 1, 3, 1, &[0, 3]).unwrap_err();
        assert_eq!(
            err,
            IndexError {
                index: 3,
                size: 3,
                position: 1
            }
        );
        assert_eq!(index_select(&src, 1, 3, 1, &[-1]).unwrap_err().index, -1);
        let mut dst = vec![0.0f32; 3];
        assert!(index_add(&mut dst, 1, 3, 1, &[0, 7], &[1.0, 1.0]).is_err());
        assert!(scatter_add(&mut dst, &[3], 0, &[0, -2], &[2], &[1.0, 1.0], &[2]).is_err());
        assert_eq!(dst, vec![0.0; 3]);
        assert_eq!(gather(&src, &[3], 0, &[i64::MAX], &[1]).unwrap_err().size, 3);
        assert!(err.to_string().contains("index 3") && err.to_string().contains("size 3"));
    }

    #[test]
    fn gather_matches_pytorch() {
        // torch.gather(torch.tensor([[1, 2], [3, 4]]), 1, torch.tensor([[0, 0], [1, 0]]))
        //   == [[1, 1], [4, 3]]
        let src = [1, 2, 3, 4];
        assert_eq!(
            gather(&src, &[2, 2], 1, &[0, 0, 1, 0], &[2, 2]).unwrap(),
            vec![1, 1, 4, 3]
        );
        // Along axis 0, with an index smaller than src in the other dim: [[src[1][0]], [src[0][0]],
        // [src[1][0]]] from a [2, 3] src.
        let src = [10, 11, 12, 20, 21, 22];
        assert_eq!(
            gather(&src, &[2, 3], 0, &[1, 0, 1], &[3, 1]).unwrap(),
            vec![20, 10, 20]
        );
    }

    #[test]
    fn scatter_add_matches_pytorch() {
        // torch.zeros(3, 5).scatter_add_(0, torch.tensor([[0, 1, 2, 0, 0]]), torch.ones(2, 5))
        //   == [[1, 0, 0, 1, 1], [0, 1, 0, 0, 0], [0, 0, 1, 0, 0]]
        let mut dst = vec![0.0f64; 15];
        scatter_add(
            &mut dst,
            &[3, 5],
            0,
            &[0, 1, 2, 0, 0],
            &[1, 5],
            &[1.0; 10],
            &[2, 5],
        )
        .unwrap();
        let expected = [1., 0., 0., 1., 1., 0., 1., 0., 0., 0., 0., 0., 1., 0., 0.];
        assert_eq!(dst, expected);
        // Along the last axis with repeats: row r gets src[r] summed at its targets.
        let mut dst = vec![0.0f64; 4];
        scatter_add(
            &mut dst,
            &[2, 2],
            1,
            &[1, 1, 0, 1],
            &[2, 2],
            &[1., 2., 3., 4.],
            &[2, 2],
        )
        .unwrap();
        assert_eq!(dst, vec![0., 3., 3., 4.]);
    }

    #[test]
    fn scatter_add_is_the_adjoint_of_gather() {
        // <gather(x, idx), y> == <x, scatter_add(0, idx, y)> for every x, y.
        let (src_shape, index_shape) = ([3, 4, 2], [2, 5, 2]);
        let x: Vec<f64> = (0..24).map(|i| (i as f64 * 0.37).sin()).collect();
        let y: Vec<f64> = (0..20).map(|i| (i as f64 * 0.91).cos()).collect();
        let idx: Vec<i64> = (0..20).map(|i| (i * 7 % 4) as i64).collect();
        let gx = gather(&x, &src_shape, 1, &idx, &index_shape).unwrap();
        let mut sy = vec![0.0; 24];
        scatter_add(&mut sy, &src_shape, 1, &idx, &index_shape, &y, &index_shape).unwrap();
        let lhs: f64 = gx.iter().zip(&y).map(|(a, b)| a * b).sum();
        let rhs: f64 = x.iter().zip(&sy).map(|(a, b)| a * b).sum();
        assert!((lhs - rhs).abs() < 1e-12, "{lhs} vs {rhs}");
    }

    #[test]
    #[should_panic(expected = "callers check shapes")]
    fn shape_violations_panic() {
        let _ = gather(&[1, 2], &[2], 0, &[0, 0], &[1, 2]);
    }
}
