using static TorchSharp.torch;

namespace SimKO.Host.Model;

/// <summary>
/// Rotary position embeddings in the HF layout: the head dimension is split into a first and a
/// second half, and <c>rotate_half(x) = cat(-x₂, x₁)</c>; frequencies θ^(-2i/d), optionally
/// rescaled by Llama-3's <c>rope_scaling</c>.
/// </summary>
public static class Rotary
{
    /// <summary>
    /// The inverse frequencies <c>[head_dim / 2]</c>, computed in double: <c>θ^(-2i/d)</c>, then for
    /// llama3 scaling wavelengths longer than <c>original_max / low_freq_factor</c> are divided by
    /// <c>factor</c>, those shorter than <c>original_max / high_freq_factor</c> are kept, and the
    /// band between is blended linearly in <c>original_max / wavelength</c>.
    /// </summary>
    public static double[] InverseFrequencies(int headDim, double theta, RopeScaling? scaling)
    {
        int half = headDim / 2;
        var inv = new double[half];
        for (int i = 0; i < half; i++)
            // HF computes base ** (arange(0, d, 2).float() / d) in float32, then 1 / that.
            inv[i] = 1.0 / (float)System.Math.Pow(theta, (float)(2 * i) / headDim);
        if (scaling is null) return inv;
        double lowWavelen = scaling.OriginalMaxPositionEmbeddings / scaling.LowFreqFactor;
        double highWavelen = scaling.OriginalMaxPositionEmbeddings / scaling.HighFreqFactor;
        for (int i = 0; i < half; i++)
        {
            double wavelen = 2 * System.Math.PI / inv[i];
            if (wavelen > lowWavelen) inv[i] /= scaling.Factor;
            else if (wavelen >= highWavelen)
            {
                double smooth = (scaling.OriginalMaxPositionEmbeddings / wavelen - scaling.LowFreqFactor)
                                / (scaling.HighFreqFactor - scaling.LowFreqFactor);
                inv[i] = (1 - smooth) * inv[i] / scaling.Factor + smooth * inv[i];
            }
        }
        return inv;
    }

    /// <summary>
    /// cos and sin tables for the given positions, computed in float32 and cast to <paramref name="dtype"/>.
    /// </summary>
    /// <param name="invFreq"><c>[head_dim / 2]</c> float32 on the model's device</param>
    /// <param name="positions"><c>[B, T]</c> int64 position ids</param>
    /// <returns>cos, sin, each <c>[B, 1, T, head_dim]</c> (broadcast over heads)</returns>
    public static (Tensor Cos, Tensor Sin) Tables(Tensor invFreq, Tensor positions, ScalarType dtype)
    {
        using var pos = positions.to_type(ScalarType.Float32).unsqueeze(-1);   // [B, T, 1]
        using var freqs = pos.mul(invFreq);                                   // [B, T, hd/2]
        using var emb = cat([freqs, freqs], -1);                              // [B, T, hd]
        using var emb4 = emb.unsqueeze(1);                                    // [B, 1, T, hd]
        using var cos = emb4.cos();
        using var sin = emb4.sin();
        return (cos.to_type(dtype), sin.to_type(dtype));
    }

    /// <summary><c>x · cos + rotate_half(x) · sin</c>.</summary>
    /// <param name="x"><c>[B, H, T, hd]</c></param>
    /// <param name="cos"><c>[B, 1, T, hd]</c></param>
    /// <param name="sin"><c>[B, 1, T, hd]</c></param>
    public static Tensor Apply(Tensor x, Tensor cos, Tensor sin)
    {
        long half = x.shape[^1] / 2;
        using var x1 = x.narrow(-1, 0, half);                                 // [B, H, T, hd/2]
        using var x2 = x.narrow(-1, half, half);                              // [B, H, T, hd/2]
        using var negX2 = x2.neg();
        using var rotated = cat([negX2, x1], -1);                             // [B, H, T, hd]
        using var a = x.mul(cos);
        using var b = rotated.mul(sin);
        return a.add(b);
    }
}
