/// Small tensor helpers shared by the math: stop-gradient, masked reductions, shape checks.
/// Functions return fresh tensors and never dispose their inputs (the caller owns the scope).
module SimKO.Math.Tensors

open System
open TorchSharp

type Tensor = torch.Tensor

/// The Scalars this thread made last, kept reachable. A Scalar passed straight into a TorchSharp call is
/// reachable only through its native handle during the call, and dispose scopes track tensors, not
/// Scalars: a collection could finalize (free) it while libtorch reads it. Under load the suite failed
/// that way ("Scalar.h toDouble"; "alpha must not be a floating point number": a freed Scalar's memory
/// reused). A Scalar is needed only by the call its expression feeds, which ends long before this thread
/// makes 256 more; then it is dropped (not disposed: a caller that keeps it keeps it alive) and the
/// finalizer frees it. Invisible to results: the one mutable state of this library, a lifetime guard.
type private RecentScalars() =
    [<ThreadStatic; DefaultValue>] static val mutable private ring: Scalar[]
    [<ThreadStatic; DefaultValue>] static val mutable private next: int
    static member Keep(s: Scalar) : Scalar =
        if isNull RecentScalars.ring then RecentScalars.ring <- Array.zeroCreate 256
        RecentScalars.ring.[RecentScalars.next] <- s
        RecentScalars.next <- (RecentScalars.next + 1) % RecentScalars.ring.Length
        s

/// A float as a torch Scalar (F# does not apply TorchSharp's implicit conversions everywhere).
let sc (x: float) : Scalar = RecentScalars.Keep(x.ToScalar())

/// An int64 as a torch Scalar.
let sci (x: int64) : Scalar = RecentScalars.Keep(x.ToScalar())

/// Stop-gradient `sg(·)` of the paper: the value of `t` with no gradient path.
let sg (t: Tensor) : Tensor = t.detach()

/// Shape of a tensor as text, e.g. `[2; 5; 11]`, for error messages.
let shapeText (t: Tensor) =
    t.shape |> Array.map string |> String.concat "; " |> sprintf "[%s]"

/// Fails with a message naming the tensor, the expected and the found shape.
/// `expected` uses -1 for "any size".
let requireShape (name: string) (expected: int64[]) (t: Tensor) =
    let s = t.shape
    let ok = s.Length = expected.Length && Array.forall2 (fun e f -> e < 0L || e = f) expected s
    if not ok then
        let exp = expected |> Array.map (fun e -> if e < 0L then "*" else string e) |> String.concat "; "
        invalidArg name (sprintf "tensor '%s' has shape %s, expected [%s]" name (shapeText t) exp)

/// Σ x over positions where mask = 1. `x`, `mask`: same shape; mask is 0/1 (float).
let maskedSum (x: Tensor) (mask: Tensor) : Tensor = (x * mask).sum()

/// Mean of x over positions where mask = 1 (0 when the mask is empty).
let maskedMean (x: Tensor) (mask: Tensor) : Tensor =
    (x * mask).sum() / mask.sum().clamp_min(sc (1.0))

/// Whether two tensors are on the same device (type and index; `Device` objects compare by reference).
let sameDevice (a: Tensor) (b: Tensor) =
    a.device_type = b.device_type && a.device_index = b.device_index

/// A scalar tensor's value as a float.
let value (t: Tensor) : float = t.detach().to_type(torch.ScalarType.Float64).item<float>()

/// A 0/1 float tensor (dtype of `like`) from a boolean tensor.
let asFloat (like: Tensor) (b: Tensor) : Tensor = b.to_type(like.dtype)

/// A float tensor of the given values on the device/dtype of `like`.
let ofArrayLike (like: Tensor) (values: float[]) : Tensor =
    torch.tensor(values, dtype = Nullable like.dtype, device = like.device)
