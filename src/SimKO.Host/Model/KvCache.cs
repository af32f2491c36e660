using TorchSharp;
using static TorchSharp.torch;

namespace SimKO.Host.Model;

/// <summary>
/// Pre-allocated key/value cache for batched decoding. Every row shares one time axis (prompts
/// are left-padded), so position <c>t</c> of the cache is position <c>t</c> of every row;
/// <see cref="KeyValid"/> marks which cached positions are real tokens (padding is never attended).
/// The tensors live outside any dispose scope until <see cref="Dispose"/>.
/// </summary>
public sealed class KvCache : IDisposable
{
    private readonly Tensor[] keys;    // per layer [B, n_kv, capacity, hd]
    private readonly Tensor[] values;  // per layer [B, n_kv, capacity, hd]

    /// <summary>Rows in the batch.</summary>
    public int Batch { get; }
    /// <summary>Positions the cache can hold (prompt length + new tokens).</summary>
    public int Capacity { get; }
    /// <summary>Positions filled so far.</summary>
    public int Length { get; private set; }
    /// <summary><c>[B, capacity]</c> bool: true where the cached position holds a real token.</summary>
    public Tensor KeyValid { get; }

    public KvCache(ModelConfig config, int batch, int capacity, Device device, ScalarType dtype)
    {
        Batch = batch;
        Capacity = capacity;
        keys = new Tensor[config.NumHiddenLayers];
        values = new Tensor[config.NumHiddenLayers];
        for (int l = 0; l < keys.Length; l++)
        {
            keys[l] = torch.zeros([batch, config.NumKeyValueHeads, capacity, config.HeadDim], dtype, device).DetachFromDisposeScope();
            values[l] = torch.zeros([batch, config.NumKeyValueHeads, capacity, config.HeadDim], dtype, device).DetachFromDisposeScope();
        }
        KeyValid = torch.zeros([batch, capacity], ScalarType.Bool, device).DetachFromDisposeScope();
    }

    /// <summary>Marks <c>T</c> new positions starting at <see cref="Length"/> valid or not.</summary>
    /// <param name="valid"><c>[B, T]</c> bool</param>
    internal void WriteValid(Tensor valid)
    {
        long t = valid.shape[1];
        if (Length + t > Capacity)
            throw new InvalidOperationException($"KV cache overflow: {Length} + {t} positions exceed its capacity {Capacity}.");
        using var slot = KeyValid.narrow(1, Length, t);              // [B, T]
        slot.copy_(valid);
    }

    /// <summary>
    /// Writes the new keys/values of one layer at <see cref="Length"/> and returns views of the
    /// cache up to and including them.
    /// </summary>
    /// <param name="k"><c>[B, n_kv, T, hd]</c></param>
    /// <param name="v"><c>[B, n_kv, T, hd]</c></param>
    /// <returns>keys, values: <c>[B, n_kv, Length + T, hd]</c></returns>
    internal (Tensor K, Tensor V) Append(int layer, Tensor k, Tensor v)
    {
        long t = k.shape[2];
        using (var ks = keys[layer].narrow(2, Length, t)) ks.copy_(k);
        using (var vs = values[layer].narrow(2, Length, t)) vs.copy_(v);
        return (keys[layer].narrow(2, 0, Length + t), values[layer].narrow(2, 0, Length + t));
    }

    /// <summary>Moves <see cref="Length"/> past the <c>T</c> positions just written.</summary>
    internal void Advance(int t) => Length += t;

    public void Dispose()
    {
        foreach (var t in keys) t.Dispose();
        foreach (var t in values) t.Dispose();
        KeyValid.Dispose();
    }
}
