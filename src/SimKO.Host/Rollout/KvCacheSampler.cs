using SimKO.Host.Model;
using static TorchSharp.torch;

namespace SimKO.Host.Rollout;

/// <summary>
/// Batched sampling from a <see cref="CausalLM"/> with a KV cache: prompts of different lengths are
/// left-padded, every prompt is repeated n times, each step feeds one token per row; rows stop at a stop
/// token (kept) or after max new tokens. Tokens come from the shared <see cref="TokenSampler"/>, each
/// sequence with its own stream (<see cref="RolloutSeeds.Sequence"/>), so the static and the continuous
/// engine sample the same tokens for a seed. No gradient is tracked, tensors are released every step.
/// </summary>
public sealed class KvCacheSampler(CausalLM model, int padId, bool useCache = true, Func<IReadOnlyList<int>, string>? decode = null) : IRolloutEngine
{
    /// <summary>Rows sampled together at most by default (the KV cache's size; `simko plan` reads it).</summary>
    public const int DefaultMaxRows = 512;

    /// <summary>Rows sampled together at most (memory bound); larger requests run in chunks.</summary>
    public int MaxRows { get; init; } = DefaultMaxRows;

    /// <summary>Ids the tokenizer has (0 = the model's whole vocabulary): larger ids are never sampled (<see cref="TokenSampler.MaskBeyond"/>).</summary>
    public int SampledVocab { get; init; }

    public IReadOnlyList<Generated> Generate(GenerateRequest request)
    {
        if (request.Prompts.Count == 0) return [];
        if (request.Prompts.Any(p => p.Length == 0)) throw new ArgumentException("every prompt needs at least one token");
        model.Config.CheckSequenceLength(request.Prompts.Max(p => p.Length), request.MaxNewTokens);
        if (request.StopStrings.Count > 0 && decode is null)
            throw new ArgumentException("stop strings need the sampler to be given the tokenizer's decode function");
        // sample j of prompt i draws from its own stream (RolloutSeeds.Sequence), as in ContinuousBatcher and simko serve
        var rows = request.Prompts.SelectMany((p, i) => Enumerable.Range(0, request.SamplesPerPrompt)
            .Select(j => new Row(i, p, new SequenceRng(RolloutSeeds.Sequence(request.Seed, request.PromptIndexBase + i, j))))).ToList();
        var result = new List<Generated>(rows.Count);
        for (int start = 0; start < rows.Count; start += MaxRows)
            result.AddRange(Chunk(rows.Skip(start).Take(MaxRows).ToList(), request));
        return result;
    }

    sealed record Row(int Index, int[] Ids, SequenceRng Rng);

    List<Generated> Chunk(List<Row> rows, GenerateRequest r)
    {
        var device = model.model.embed_tokens.weight!.device;
        int b = rows.Count;
        var tokens = Enumerable.Range(0, b).Select(_ => new List<int>()).ToArray();
        var logps = Enumerable.Range(0, b).Select(_ => new List<float>()).ToArray();
        var done = new bool[b];
        var stop = r.StopTokenIds.ToHashSet();
        var filter = new TokenFilter(r.Temperature, r.TopK, r.TopP);
        using var noGrad = no_grad();
        var (seq, mask) = LeftPadding.Pad(rows.Select(x => x.Ids).ToList(), padId, device);                        // (B, P), (B, P)
        seq.DetachFromDisposeScope(); mask.DetachFromDisposeScope();
        using var cache = useCache ? new KvCache(model.Config.NumHiddenLayers, (int)seq.shape[1] + r.MaxNewTokens) : null;
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
                    logits = model.Forward(seq, mask, CausalLM.PositionsFromMask(mask), cache, lastPositionOnly: true).select(1, -1);
                else
                {
                    var pos = (mask.sum(1, keepdim: true) - 1);                                                  // (B, 1)
                    logits = model.Forward(nextInput!, mask, pos, cache).select(1, -1);
                }
                // only live rows draw, so a row's stream never depends on when the others stop
                var live = Enumerable.Range(0, b).Where(i => !done[i]).ToArray();
                var liveLogits = live.Length == b ? logits : logits.index_select(0, tensor(live.Select(i => (long)i).ToArray(), device: device));
                var (sampled, lp) = TokenSampler.Sample(liveLogits.to(ScalarType.Float32), live.Select(_ => filter).ToList(), live.Select(i => rows[i].Rng).ToList(), SampledVocab);
                var fed = new long[b];
                Array.Fill(fed, padId);
                for (int k = 0; k < live.Length; k++)
                {
                    int i = live[k];
                    tokens[i].Add(sampled[k]);
                    logps[i].Add(lp[k]);
                    if (stop.Contains(sampled[k])) done[i] = true;
                    else if (r.StopStrings.Count > 0)
                    {
                        var text = decode!(tokens[i]);
                        if (r.StopStrings.Any(text.EndsWith)) done[i] = true;
                    }
                    if (!done[i]) fed[i] = sampled[k];
                }
                if (done.All(d => d)) break;
                // rows that are done keep feeding padding that nobody attends to
                var alive = tensor(done.Select(d => d ? 0L : 1L).ToArray(), [b, 1], device: device);            // (B, 1)
                var newMask = cat([mask, alive], 1).DetachFromDisposeScope();
                mask.Dispose(); mask = newMask;
                var fedT = tensor(fed, [b, 1], device: device);                                                   // (B, 1)
                if (cache is null)
                {
                    var newSeq = cat([seq, fedT], 1).DetachFromDisposeScope();
                    seq.Dispose(); seq = newSeq;
                }
                else
                {
                    nextInput?.Dispose();
                    nextInput = fedT.DetachFromDisposeScope();
                }
            }
        }
        finally
        {
            mask.Dispose(); seq.Dispose(); nextInput?.Dispose();
        }
        return Enumerable.Range(0, b).Select(i => new Generated(rows[i].Index, tokens[i].ToArray(), logps[i].ToArray())).ToList();
    }
}
