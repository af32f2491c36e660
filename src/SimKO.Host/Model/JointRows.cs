using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SimKO.Host.Model;

/// <summary>
/// The weights (and biases) of linear layers that read the same input (q/k/v, gate/up) made row
/// blocks of one tensor, so a sampling forward on the CPU multiplies once instead of once per layer.
/// Each layer's parameter becomes a view of the joint tensor (<c>set_</c>): no copy is kept, and the
/// parameters stay what they were to every other reader (names, shapes, gradients; in-place optimizer
/// updates and checkpoint loads land in the joint tensor, which is their storage). Measured on the dev
/// machine: q, k and v of a d512 layer at one row take 90–120 µs joined against 120–220 µs apart (a
/// 512 × 512 mat-vec is too small to stream at full bandwidth). A parameter replaced by another tensor
/// (a move to another dtype or device makes new ones) leaves the joint tensor: <see cref="Intact"/>
/// then says no and the layers run one by one. CPU only (<see cref="Shares"/> reads host addresses).
/// </summary>
public sealed class JointRows : IDisposable
{
    readonly LoraLinear[] _parts;
    readonly Parameter[] _weights;
    readonly Parameter?[] _biases;
    readonly long[] _offsets;
    readonly long _inFeatures;

    /// <summary>[Σ out, in]</summary>
    public Tensor Weight { get; }
    /// <summary>[Σ out], or null when the layers have no bias</summary>
    public Tensor? Bias { get; }

    JointRows(LoraLinear[] parts, Tensor weight, Tensor? bias)
    {
        _parts = parts; Weight = weight; Bias = bias;
        _weights = parts.Select(p => p.weight).ToArray();
        _biases = parts.Select(p => p.bias).ToArray();
        _inFeatures = parts[0].InFeatures;
        _offsets = new long[parts.Length];
        for (int i = 1; i < parts.Length; i++) _offsets[i] = _offsets[i - 1] + parts[i - 1].OutFeatures;
    }

    /// <summary>Join the layers' parameters, or null when they cannot be (not all on the CPU in one dtype,
    /// different input sizes, a non-contiguous weight, or biases on some and not others).</summary>
    public static JointRows? Join(params LoraLinear[] parts)
    {
        var first = parts[0].weight;
        if (parts.Any(p => p.weight.device_type != DeviceType.CPU || p.weight.dtype != first.dtype || p.InFeatures != parts[0].InFeatures
                           || !p.weight.is_contiguous() || (p.bias is null) != (parts[0].bias is null)))
            return null;
        using var _ = no_grad();
        var weight = cat(parts.Select(p => (Tensor)p.weight).ToArray(), 0).DetachFromDisposeScope();                                   // (Σ out, in)
        var bias = parts[0].bias is null ? null : cat(parts.Select(p => (Tensor)p.bias!).ToArray(), 0).DetachFromDisposeScope();   // (Σ out)
        long at = 0;
        foreach (var p in parts)
        {
            long n = p.OutFeatures;
            using (var rows = weight.narrow(0, at, n)) p.weight.set_(rows);
            if (bias is not null) using (var piece = bias.narrow(0, at, n)) p.bias!.set_(piece);
            at += n;
        }
        return new JointRows(parts, weight, bias);
    }

    /// <summary>Every part's weight and bias is still the parameter that was joined (a move to another dtype or
    /// device makes new ones) and starts where it was put: a reference comparison and one native call per
    /// tensor, before each use (the address check of <see cref="Shares"/> costs ~9 µs a tensor, a tenth of
    /// a one-row decode layer). Not seen: a <c>set_</c> of a parameter onto other storage at the same offset,
    /// which nothing in SimKO does but <see cref="Join"/>.</summary>
    public bool Intact
    {
        get
        {
            for (int i = 0; i < _parts.Length; i++)
            {
                var p = _parts[i];
                if (!ReferenceEquals(p.weight, _weights[i]) || !ReferenceEquals(p.bias, _biases[i])) return false;
                if (p.weight.storage_offset() != _offsets[i] * _inFeatures || (Bias is not null && p.bias!.storage_offset() != _offsets[i])) return false;
            }
            return true;
        }
    }

    /// <summary>The full check: every part's data lies at its place in the joint tensors' memory.</summary>
    public bool Shares()
    {
        for (int i = 0; i < _parts.Length; i++)
            if (!At(Weight, _parts[i].weight, _offsets[i] * _inFeatures) || (Bias is not null && !At(Bias, _parts[i].bias!, _offsets[i]))) return false;
        return true;
    }

    /// <summary>No part has an adapter taking part in forward (with one, the parts run one by one).</summary>
    public bool AdaptersOff => _parts.All(p => p.LoraA is null || !p.AdapterEnabled);

    /// <summary>Whether a forward taking <paramref name="path"/> multiplies by the joint tensor: a decode product
    /// (<see cref="DecodeLinear.Choose"/>), no adapter in use, and the parts still joined.</summary>
    public bool UsableFor(DecodeLinear.Path path) => path != DecodeLinear.Path.Linear && AdaptersOff && Intact;

    static bool At(Tensor joint, Tensor part, long elements)
    {
        if (part.device_type != DeviceType.CPU || part.dtype != joint.dtype || !part.is_contiguous()) return false;
        try
        {
            ref byte j = ref MemoryMarshal.GetReference(joint.bytes);
            ref byte p = ref MemoryMarshal.GetReference(part.bytes);
            return Unsafe.ByteOffset(ref j, ref p) == elements * joint.ElementSize;
        }
        catch (Exception) { return false; }   // e.g. more bytes than one span holds: not shown to share, so not used
    }

    /// <summary>Releases the joint tensors' handles; the parameters keep their storage alive.</summary>
    public void Dispose()
    {
        Weight.Dispose();
        Bias?.Dispose();
    }
}
