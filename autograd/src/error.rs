//! Errors are values. Every variant names the op and what it was given, so a message read
//! without the code ("matmul: inner dimensions differ: [2, 3] @ [4, 5]") says what went wrong.

use crate::{DType, Device, Shape};
use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// Shapes that must agree (or broadcast) do not.
    ShapeMismatch {
        op: &'static str,
        shapes: Vec<Shape>,
        reason: String,
    },
    DTypeMismatch {
        op: &'static str,
        dtypes: Vec<DType>,
    },
    /// The op does not compute in this dtype (e.g. arithmetic on bf16 storage, a float mask).
    UnsupportedDType {
        op: &'static str,
        dtype: DType,
        expected: &'static str,
    },
    DeviceMismatch {
        op: &'static str,
        devices: Vec<Device>,
    },
    DeviceUnavailable {
        device: Device,
        reason: String,
    },
    /// An axis outside `-rank..rank`, or repeated.
    BadAxis {
        op: &'static str,
        axis: isize,
        rank: usize,
    },
    /// An index value outside `0..size` along the indexed axis.
    IndexOutOfRange {
        op: &'static str,
        index: i64,
        size: usize,
    },
    /// The op is undefined on an empty input (e.g. max of zero elements).
    EmptyInput {
        op: &'static str,
        shape: Shape,
    },
    /// A data length that does not match the shape it is given.
    DataLength {
        op: &'static str,
        len: usize,
        shape: Shape,
    },
    /// A tensor that requires gradient reached an op that cannot pass one back.
    NoBackward {
        op: &'static str,
    },
    /// `backward()` on a non-scalar without a seed, or a seed of the wrong shape.
    BadSeed {
        output: Shape,
        seed: Option<Shape>,
    },
    /// The op has no kernel for this device yet (the CUDA backend grows op family by op
    /// family). Never answered by a silent copy to the CPU.
    NotImplementedOnDevice {
        op: &'static str,
        device: Device,
    },
    /// Any other invalid argument, with the op's own explanation.
    InvalidArgument {
        op: &'static str,
        reason: String,
    },
}

pub type Result<T> = std::result::Result<T, Error>;

fn fmt_shapes(shapes: &[Shape]) -> String {
    shapes
        .iter()
        .map(|s| format!("{:?}", s.as_slice()))
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::ShapeMismatch { op, shapes, reason } => {
                write!(f, "{op}: {reason}: shapes {}", fmt_shapes(shapes))
            }
            Error::DTypeMismatch { op, dtypes } => {
                let d: Vec<String> = dtypes.iter().map(|d| d.to_string()).collect();
                write!(f, "{op}: dtypes differ: {}", d.join(", "))
            }
            Error::UnsupportedDType { op, dtype, expected } => {
                write!(
                    f,
                    "{op}: dtype {dtype} is not supported here (expected {expected})"
                )
            }
            Error::DeviceMismatch { op, devices } => {
                let d: Vec<String> = devices.iter().map(|d| d.to_string()).collect();
                write!(f, "{op}: inputs are on different devices: {}", d.join(", "))
            }
            Error::DeviceUnavailable { device, reason } => {
                write!(f, "device {device} is unavailable: {reason}")
            }
            Error::BadAxis { op, axis, rank } => {
                write!(
                    f,
                    "{op}: axis {axis} is out of range (or repeated) for a tensor of rank {rank}"
                )
            }
            Error::IndexOutOfRange { op, index, size } => {
                write!(
                    f,
                    "{op}: index {index} is out of range for an axis of size {size}"
                )
            }
            Error::EmptyInput { op, shape } => {
                write!(
                    f,
                    "{op}: undefined on an empty input of shape {:?}",
                    shape.as_slice()
                )
            }
            Error::DataLength { op, len, shape } => write!(
                f,
                "{op}: {len} elements cannot fill shape {:?} ({} elements)",
                shape.as_slice(),
                shape.iter().product::<usize>()
            ),
            Error::NoBackward { op } => write!(
                f,
                "{op}: this op has no backward, but an input requires gradient \
                 (detach the input or run it under no_grad)"
            ),
            Error::BadSeed { output, seed: None } => write!(
                f,
                "backward: the output has shape {:?}, not a scalar; pass a seed gradient with backward_with",
                output.as_slice()
            ),
            Error::BadSeed {
                output,
                seed: Some(seed),
            } => write!(
                f,
                "backward_with: seed shape {:?} differs from output shape {:?}",
                seed.as_slice(),
                output.as_slice()
            ),
            Error::NotImplementedOnDevice { op, device } => write!(
                f,
                "{op}: no kernel for {device} yet (the CUDA backend covers elementwise ops, \
                 comparisons, where, copies, sum and matmul; issue 3); move the inputs with \
                 to_device(Device::Cpu) to run it on the CPU"
            ),
            Error::InvalidArgument { op, reason } => write!(f, "{op}: {reason}"),
        }
    }
}

impl std::error::Error for Error {}
