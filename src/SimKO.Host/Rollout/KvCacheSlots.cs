using SimKO.Host.Model;
using static TorchSharp.torch;

namespace SimKO.Host.Rollout;

/// <summary>
/// Continuous batching's slot operations on a <see cref="KvCache"/> (rows are slots that sequences
/// join and leave, <see cref="ContinuousBatcher"/>): place a prefilled row, add empty rows, pad or drop
/// the front of the time axis. The model only appends to its cache and selects rows; these live here.
/// </summary>
public static class KvCacheSlots
{
    /// <summary>Batch rows of the buffers (0 before the first append).</summary>
    public static long Rows(this KvCache cache) => cache.Buffers(0).Keys?.shape[0] ?? 0;

    /// <summary>Copy row <paramref name="sourceRow"/> of <paramref name="source"/> (its whole
    /// <see cref="KvCache.Length"/>) into row <paramref name="row"/> of <paramref name="cache"/>, right-aligned:
    /// the source's last position lands on the cache's last. Needs <c>cache.Length ≥ source.Length</c>.</summary>
    public static void PlaceRow(this KvCache cache, long row, KvCache source, long sourceRow)
    {
        long len = cache.Length, n = source.Length;
        if (n > len) throw new ArgumentException($"a source of {n} positions does not fit a cache of {len}: pad the front first");
        using var _ = no_grad();
        for (int i = 0; i < cache.Layers; i++)
        {
            var (k, v) = cache.Buffers(i);
            var (sk, sv) = source.Buffers(i);
            k!.narrow(0, row, 1).narrow(2, len - n, n).copy_(sk!.narrow(0, sourceRow, 1).narrow(2, 0, n));   // (1, n_kv, n, hd)
            v!.narrow(0, row, 1).narrow(2, len - n, n).copy_(sv!.narrow(0, sourceRow, 1).narrow(2, 0, n));
        }
    }

    /// <summary>Append <paramref name="n"/> empty (zero) rows.</summary>
    public static void AddRows(this KvCache cache, long n)
    {
        for (int i = 0; i < cache.Layers; i++)
        {
            var (k, v) = cache.Buffers(i);
            cache.Replace(i, Extend(k!, n), Extend(v!, n), cache.Length);
        }
        static Tensor Extend(Tensor t, long n) =>
            cat([t, zeros([n, t.shape[1], t.shape[2], t.shape[3]], t.dtype, t.device)], 0).DetachFromDisposeScope();   // (B+n, n_kv, cap, hd)
    }

    /// <summary>Insert <paramref name="n"/> empty positions before the first of every row (contents move right).</summary>
    public static void PadFront(this KvCache cache, long n) => Shift(cache, n);

    /// <summary>Drop the first <paramref name="n"/> positions of every row (contents move left).</summary>
    public static void DropFront(this KvCache cache, long n) => Shift(cache, -n);

    static void Shift(KvCache cache, long by)
    {
        long len = cache.Length, keep = by >= 0 ? len : len + by, from = by >= 0 ? 0 : -by, to = by >= 0 ? by : 0;
        for (int i = 0; i < cache.Layers; i++)
        {
            var (k, v) = cache.Buffers(i);
            cache.Replace(i, Moved(k!), Moved(v!), keep + to);
        }
        Tensor Moved(Tensor t)
        {
            long cap = System.Math.Max(t.shape[2], keep + to);
            var buffer = zeros([t.shape[0], t.shape[1], cap, t.shape[3]], t.dtype, t.device).DetachFromDisposeScope();   // (B, n_kv, cap, hd)
            using (no_grad()) buffer.narrow(2, to, keep).copy_(t.narrow(2, from, keep));
            return buffer;
        }
    }
}
