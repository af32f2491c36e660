using SimKO.Host.Model;
using static TorchSharp.torch;

namespace SimKO.Host.Rollout;

/// <summary>
/// Batched sampling from a <see cref="CausalLM"/> with a KV cache: prompts of different lengths are
/// left-padded, every prompt is repeated n times, each step feeds one token per row; temperature,
/// top-k and top-p; rows stop at a stop token (kept) or after max new tokens. No gradient is tracked,
/// tensors are released every step, and a seeded generator makes the output deterministic on CPU.
/// </summary>
public sealed class KvCacheSampler(CausalLM model, int padId, bool useCache = true, Func<IReadOnlyList<int>, string>? decode = null) : IRolloutEngine
{
    /// <summary>Rows sampled together at most by default (the KV cache's size; `simko plan` reads it).</summary>
    public const int DefaultMaxRows = 512;

    /// <summary>Rows sampled together at most (memory bound); larger requests run in chunks.</summary>
    public int MaxRows { get; init; } = DefaultMaxRows;

    public IReadOnlyList<Generated> Generate(GenerateRequest request)
    {
        if (request.Prompts.Count == 0) return [];
        if (request.Prompts.Any(p => p.Length == 0)) throw new ArgumentException("every prompt needs at least one token");
        if (request.StopStrings.Count > 0 && decode is null)
            throw new ArgumentException("stop strings need the sampler to be given the tokenizer's decode function");
        var rows = request.Prompts.SelectMany((p, i) => Enumerable.Repeat((Index: i, Ids: p), request.SamplesPerPrompt)).ToList();
        var result = new List<Generated>(rows.Count);
        var gen = new Generator((ulong)request.Seed, model.model.embed_tokens.weight!.device);
        for (int start = 0; start < rows.Count; start += MaxRows)
            result.AddRange(Chunk(rows.Skip(start).Take(MaxRows).ToList(), request, gen));
        return result;
    }

    List<Generated> Chunk(List<(int Index, int[] Ids)> rows, GenerateRequest r, Generator gen)
    {
        var device = model.model.embed_tokens.weight!.device;
        int b = rows.Count, p = rows.Max(x => x.Ids.Length);
        var ids = new long[b * p];
        var att = new long[b * p];
        Array.Fill(ids, padId);
        for (int i = 0; i < b; i++)
        {
            int off = p - rows[i].Ids.Length;
            for (int j = 0; j < rows[i].Ids.Length; j++) { ids[i * p + off + j] = rows[i].Ids[j]; att[i * p + off + j] = 1; }
        }
        var tokens = Enumerable.Range(0, b).Select(_ => new List<int>()).ToArray();
        var logps = Enumerable.Range(0, b).Select(_ => new List<float>()).ToArray();
        var done = new bool[b];
        var stop = r.StopTokenIds.ToHashSet();
        using var noGrad = no_grad();
        using var cache = useCache ? new KvCache(model.Config.NumHiddenLayers, p + r.MaxNewTokens) : null;
        var mask = tensor(att, [b, p], device: device).DetachFromDisposeScope();
        var seq = tensor(ids, [b, p], device: device).DetachFromDisposeScope();
        Tensor? nextInput = null;
        try
        {
            for (int step = 0; step < r.MaxNewTokens; step++)
            {
                using var scope = NewDisposeScope();
                Tensor logits;
                if (cache is null)
                    logits = model.Forward(seq, mask, CausalLM.PositionsFromMask(mask)).select(1, -1);          // (B, V)
                else if (step == 0)
                    logits = model.Forward(seq, mask, CausalLM.PositionsFromMask(mask), cache).select(1, -1);
                else
                {
                    var pos = (mask.sum(1, keepdim: true) - 1);                                                  // (B, 1)
                    logits = model.Forward(nextInput!, mask, pos, cache).select(1, -1);
                }
                var (sampled, logp) = Sample(logits.to(ScalarType.Float32), r, gen);                             // (B), (B)
                var s = sampled.cpu().data<long>().ToArray();
                var l = logp.cpu().data<float>().ToArray();
                for (int i = 0; i < b; i++)
                {
                    if (done[i]) continue;
                    tokens[i].Add((int)s[i]);
                    logps[i].Add(l[i]);
                    if (stop.Contains((int)s[i])) done[i] = true;
                    else if (r.StopStrings.Count > 0)
                    {
                        var text = decode!(tokens[i]);
                        if (r.StopStrings.Any(text.EndsWith)) done[i] = true;
                    }
                }
                if (done.All(d => d)) break;
                // rows that are done keep feeding padding that nobody attends to
                var alive = tensor(done.Select(d => d ? 0L : 1L).ToArray(), device: device);
                var fed = where(alive.gt(0), sampled, full_like(sampled, padId)).unsqueeze(1);                    // (B, 1)
                var newMask = cat([mask, alive.unsqueeze(1)], 1).DetachFromDisposeScope();
                mask.Dispose(); mask = newMask;
                if (cache is null)
                {
                    var newSeq = cat([seq, fed], 1).DetachFromDisposeScope();
                    seq.Dispose(); seq = newSeq;
                }
                else
                {
                    nextInput?.Dispose();
                    nextInput = fed.DetachFromDisposeScope();
                }
            }
        }
        finally
        {
            mask.Dispose(); seq.Dispose(); nextInput?.Dispose();
        }
        return Enumerable.Range(0, b).Select(i => new Generated(rows[i].Index, tokens[i].ToArray(), logps[i].ToArray())).ToList();
    }

    /// <summary>Sample one token per row from logits [B, V]; returns the tokens and their log-probs
    /// under the distribution actually sampled from (temperature, then top-k, then top-p).</summary>
    public static (Tensor Tokens, Tensor LogProbs) Sample(Tensor logits, GenerateRequest r, Generator gen)
    {
        var z = logits / r.Temperature;
        if (r.TopK > 0 && r.TopK < z.shape[1])
        {
            var (vals, _) = z.topk(r.TopK, dim: -1);
            z = z.masked_fill(z.lt(vals.narrow(1, r.TopK - 1, 1)), double.NegativeInfinity);
        }
        if (r.TopP < 1.0)
        {
            var (sorted, order) = z.sort(-1, descending: true);
            var cumulative = sorted.softmax(-1).cumsum(-1);
            var removeSorted = (cumulative - sorted.softmax(-1)).gt(r.TopP);                // keep the token that crosses p
            var remove = zeros_like(removeSorted).scatter(-1, order, removeSorted);
            z = z.masked_fill(remove, double.NegativeInfinity);
        }
        var logp = z.log_softmax(-1);
        var tokens = logp.exp().multinomial(1, false, gen);                                    // (B, 1)
        return (tokens.squeeze(1), logp.gather(-1, tokens).squeeze(1));
    }
}
