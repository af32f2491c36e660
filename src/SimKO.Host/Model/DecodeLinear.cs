using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SimKO.Host.Model;

/// <summary>
/// y = x Wᵀ + b for the few rows of a decode step. <c>functional.linear</c> hands libtorch's CPU
/// build an sgemm with x as the row operand, and for 1–256 rows that sgemm runs far below the
/// machine (measured on the 2-core AMD EPYC dev machine with libtorch 2.10's oneMKL 2024.0, 2
/// threads: one row of a [32,000 × 512] LM head at 16–18 GB/s on one thread, 16 rows of it at
/// ~55 GFLOPS against a 130-GFLOPS peak). So, when sampling (a forward with a KV cache, gradient
/// off) on the CPU:
/// <list type="bullet">
/// <item>one row: W split in two halves of its output rows, as a batch of two matrix-vector
/// products (<c>bmm</c>, which libtorch runs one per thread): ~2× (35–48 GB/s);</item>
/// <item>2 … <see cref="MaxRows"/> rows: W · xᵀ (the same product with the operands' roles
/// swapped), transposed back: 1.4–3.6× at 4–64 rows, 1.1–1.3× at 128–256.</item>
/// </list>
/// Everything else (training, scoring, GPUs, long prefills) is <c>functional.linear</c>, so the
/// trainer's log-probs never change with this. The sums are the same dot products; the one-row
/// kernel may add them in another order, so a sampler's logits can differ from a scoring
/// forward's by float rounding (~1e-6 relative), as an inference server's do.
/// </summary>
public static class DecodeLinear
{
    /// <summary>Most rows that take the swapped product (from 1,024 rows on it gains nothing).</summary>
    public const long MaxRows = 256;

    /// <summary>Which product <see cref="Forward"/> takes.</summary>
    public enum Path { Linear, SplitMatVec, Swapped }

    /// <summary>The product for every projection of one forward (decided once per forward: the rows are the same throughout).</summary>
    /// <param name="x">the forward's input [B, T, d] (any projection's input has its B · T rows)</param>
    /// <param name="decoding">the forward samples (it has a KV cache)</param>
    public static Path Choose(Tensor x, bool decoding)
    {
        if (!decoding || is_grad_enabled() || x.device_type != DeviceType.CPU) return Path.Linear;
        long rows = x.numel() / System.Math.Max(x.size(-1), 1);
        return rows > MaxRows ? Path.Linear : rows == 1 ? Path.SplitMatVec : Path.Swapped;
    }

    /// <param name="x">[..., in]</param>
    /// <param name="weight">[out, in]</param>
    /// <param name="bias">[out] or null</param>
    /// <param name="path">from <see cref="Choose"/> (with gradient enabled, or an odd number of output rows
    /// for the split, it is <c>functional.linear</c>)</param>
    /// <returns>[..., out]</returns>
    public static Tensor Forward(Tensor x, Tensor weight, Tensor? bias, Path path)
    {
        if (path == Path.Linear || is_grad_enabled()) return functional.linear(x, weight, bias);
        long outFeatures = weight.size(0);
        if (path == Path.SplitMatVec && outFeatures % 2 != 0) return functional.linear(x, weight, bias);
        // as few tensor ops as the product allows: at one row each op's fixed cost (~1–3 µs of host work each, and a
        // nested dispose scope) was a third of the product of a [1,536 × 512] projection; intermediates are released here
        long[] shape = x.shape;                                                              // (..., in)
        long inFeatures = shape[^1], rows = x.numel() / inFeatures;
        shape[^1] = outFeatures;                                                             // (..., out)
        Tensor y;
        if (path == Path.SplitMatVec)
        {
            using var halves = weight.view(2, outFeatures / 2, inFeatures);                 // (2, out/2, in)
            // the row as a column of each half, passed transposed (strides (0, s, in)): libtorch then runs each half as
            // a product with a transposed operand, 48 GB/s on the [32,000 × 512] head; the same column with strides
            // (0, 1, 1) took a 4–7 GB/s path
            using var column = x.as_strided([2, inFeatures, 1], [0, x.stride(-1), inFeatures], x.storage_offset());   // (2, in, 1)
            using var product = halves.bmm(column);                                          // (2, out/2, 1)
            y = product.view(shape);                                                         // (..., out)
        }
        else
        {
            using var x2 = x.reshape(rows, inFeatures);                                      // (M, in)
            using var xt = x2.t();                                                           // (in, M)
            using var product = weight.mm(xt);                                               // (out, M)
            using var transposed = product.t();                                              // (M, out), strided
            using var rowsOut = transposed.contiguous();                                     // (M, out)
            y = rowsOut.view(shape);                                                         // (..., out)
        }
        return bias is null ? y : y.add_(bias);
    }
}
