using System.Diagnostics;
using SimKO.Data.Tokenizers;
using SimKO.Host.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace SimKO.Host.Rollout;

/// <summary>Options of the in-process sampler.</summary>
/// <param name="MaxBatchRows">rows (prompt × sample) decoded together; bounds memory</param>
/// <param name="UseCache">false recomputes the whole sequence every step (the benchmark's baseline)</param>
public sealed record RolloutEngineOptions(int MaxBatchRows = 64, bool UseCache = true);

/// <summary>
/// Batched sampling from a <see cref="CausalLM"/> in this process. A response ends on the
/// tokenizer's EOS, on an <c>eos_token_id</c> of the model's config.json, on a request stop id
/// or stop string, or at MaxNewTokens. Prompts are left-padded to a
/// common length, so every row's next token sits in the last column; the prompt is run once
/// (prefill) and each new token is one cached forward step. Runs without gradient tracking, with
/// one dispose scope per step, and draws from its own generator seeded by
/// <see cref="SamplingSettings.Seed"/> (deterministic on CPU for a given seed, prompts and options).
/// </summary>
public sealed class KvCacheRolloutEngine : IRolloutEngine
{
    private readonly CausalLM model;
    private readonly ITokenizer? tokenizer;
    private readonly int eosId, padId;

    public RolloutEngineOptions Options { get; }

    /// <summary>Progress callback: (tokens generated so far in this call, decode steps so far).</summary>
    public Action<long, long>? Progress { get; set; }

    /// <param name="model">the policy; sampled in its current state (no copy)</param>
    /// <param name="tokenizer">gives EOS and pad ids and decodes for stop strings</param>
    public KvCacheRolloutEngine(CausalLM model, ITokenizer tokenizer, RolloutEngineOptions? options = null)
        : this(model, tokenizer.EosId, tokenizer.PadId, options) => this.tokenizer = tokenizer;

    /// <summary>Without a tokenizer (stop strings then unavailable).</summary>
    public KvCacheRolloutEngine(CausalLM model, int eosId, int padId, RolloutEngineOptions? options = null)
    {
        this.model = model;
        this.eosId = eosId;
        this.padId = padId;
        Options = options ?? new RolloutEngineOptions();
        if (Options.MaxBatchRows < 1) throw new ArgumentException($"MaxBatchRows must be >= 1 (found {Options.MaxBatchRows}).");
    }

    public RolloutResult Generate(RolloutRequest request)
    {
        var s = request.Sampling;
        var problems = s.Validate().ToList();
        if (request.Prompts.Count == 0) problems.Add("no prompts.");
        for (int i = 0; i < request.Prompts.Count; i++)
        {
            var p = request.Prompts[i];
            if (p is null || p.Length == 0) problems.Add($"prompt {i} is empty.");
            else if (p.Any(t => t < 0 || t >= model.Config.VocabSize))
                problems.Add($"prompt {i} has token id {p.First(t => t < 0 || t >= model.Config.VocabSize)} outside the model's vocabulary [0, {model.Config.VocabSize}).");
        }
        int longest = request.Prompts.Where(p => p is not null).Select(p => p.Length).DefaultIfEmpty(0).Max();
        if (longest + s.MaxNewTokens > model.Config.MaxPositionEmbeddings)
            problems.Add($"the longest prompt ({longest} tokens) plus MaxNewTokens ({s.MaxNewTokens}) exceeds the model's max_position_embeddings ({model.Config.MaxPositionEmbeddings}).");
        if (s.StopStrings.Length > 0 && tokenizer is null) problems.Add("stop strings need an engine built with a tokenizer.");
        if (problems.Count > 0) throw new ArgumentException("invalid rollout request:\n  " + string.Join("\n  ", problems));

        var sw = Stopwatch.StartNew();
        var rows = new List<(int Prompt, int Sample)>();
        for (int p = 0; p < request.Prompts.Count; p++)
            for (int k = 0; k < s.SamplesPerPrompt; k++) rows.Add((p, k));
        // EOS: the tokenizer's, any listed in config.json (Qwen2.5 base models end with
        // <|endoftext|>, chat models with <|im_end|>), and the request's own stop ids.
        var stopIds = new HashSet<int>(s.StopTokenIds.Concat(model.Config.EosTokenIds)) { eosId };
        var responses = new List<RolloutResponse>(rows.Count);
        long steps = 0, tokens = 0;
        using var generator = new Generator((ulong)s.Seed, model.Device);
        using var noGrad = torch.no_grad();
        for (int start = 0; start < rows.Count; start += Options.MaxBatchRows)
        {
            var chunk = rows.GetRange(start, System.Math.Min(Options.MaxBatchRows, rows.Count - start));
            using var chunkScope = torch.NewDisposeScope();
            var (done, chunkSteps) = RunChunk(chunk.Select(r => request.Prompts[r.Prompt]).ToArray(), s, stopIds, generator, tokens, steps);
            for (int i = 0; i < chunk.Count; i++)
                responses.Add(new RolloutResponse(chunk[i].Prompt, chunk[i].Sample, done[i].Tokens.ToArray(), done[i].LogProbs.ToArray(), done[i].Reason));
            steps += chunkSteps;
            tokens += done.Sum(d => d.Tokens.Count);
        }
        return new RolloutResult(responses, new RolloutStats(tokens, steps, sw.Elapsed.TotalSeconds));
    }

    private sealed class RowState
    {
        public readonly List<int> Tokens = new();
        public readonly List<float> LogProbs = new();
        public FinishReason Reason = FinishReason.Length;
        public bool Finished;
    }

    private (RowState[] Rows, long Steps) RunChunk(int[][] prompts, SamplingSettings s, HashSet<int> stopIds, Generator generator, long tokensBefore, long stepsBefore)
    {
        int b = prompts.Length;
        int p = prompts.Max(x => x.Length);
        int maxNew = s.MaxNewTokens;
        var device = model.Device;
        var state = Enumerable.Range(0, b).Select(_ => new RowState()).ToArray();
        int stopWindow = s.StopStrings.Length == 0 ? 0 : 4 * s.StopStrings.Max(x => x.Length) + 4;

        // Left-padded prompt block, kept on the CPU for the no-cache path: [B, P + maxNew].
        long width = p + maxNew;
        var seq = new long[b * width];
        var seqValid = new bool[b * width];
        for (int i = 0; i < b; i++)
        {
            int pad = p - prompts[i].Length;
            for (int j = 0; j < p; j++)
            {
                seq[i * width + j] = j < pad ? padId : prompts[i][j - pad];
                seqValid[i * width + j] = j >= pad;
            }
        }

        KvCache? cache = Options.UseCache ? new KvCache(model.Config, b, p + maxNew, device, model.DType) : null;
        try
        {
            Tensor logits;                                                           // [B, V] float32
            using (var prefill = torch.NewDisposeScope())
            {
                var ids = Block(seq, b, width, p, device);                           // [B, P]
                var valid = BlockBool(seqValid, b, width, p, device);                // [B, P]
                if (cache is not null)
                {
                    var positions = valid.to_type(ScalarType.Int64).cumsum(1).sub_(1).clamp_min_(0); // [B, P]
                    logits = model.ForwardCached(ids, positions, valid, cache);
                }
                else
                {
                    logits = model.Forward(ids, valid, lastOnly: true).squeeze(1);  // [B, V]
                }
                logits.MoveToOuterDisposeScope();
            }

            long steps = 0;
            var next = new long[b];
            var nextValid = new bool[b];
            var nextPos = new long[b];
            for (int step = 0; step < maxNew; step++)
            {
                using var scope = torch.NewDisposeScope();
                var (tok, lp) = Sampler.Sample(logits, s, generator);                // [B], [B]
                logits.Dispose();
                var tokArr = tok.cpu().data<long>().ToArray();
                var lpArr = lp.cpu().data<float>().ToArray();
                bool allDone = true;
                for (int i = 0; i < b; i++)
                {
                    var r = state[i];
                    next[i] = padId;
                    nextValid[i] = false;
                    if (r.Finished) continue;
                    int t = (int)tokArr[i];
                    r.Tokens.Add(t);
                    r.LogProbs.Add(lpArr[i]);
                    if (stopIds.Contains(t)) { r.Finished = true; r.Reason = FinishReason.Eos; }
                    else if (stopWindow > 0 && HitsStopString(r.Tokens, s.StopStrings, stopWindow)) { r.Finished = true; r.Reason = FinishReason.StopString; }
                    else if (r.Tokens.Count >= maxNew) { r.Finished = true; r.Reason = FinishReason.Length; }
                    if (!r.Finished) { allDone = false; next[i] = t; nextValid[i] = true; }
                    nextPos[i] = prompts[i].Length + r.Tokens.Count - 1;             // position of the token just drawn
                    seq[i * width + p + step] = next[i];
                    seqValid[i * width + p + step] = nextValid[i];
                }
                Progress?.Invoke(tokensBefore + state.Sum(x => x.Tokens.Count), stepsBefore + steps);
                if (allDone) { logits = null!; break; }

                if (cache is not null)
                {
                    var ids = torch.tensor(next, [b, 1], device: device);                              // [B, 1]
                    var valid = torch.tensor(nextValid, [b, 1], device: device);                       // [B, 1]
                    var positions = torch.tensor(nextPos, [b, 1], device: device);                     // [B, 1]
                    logits = model.ForwardCached(ids, positions, valid, cache);                         // [B, V]
                }
                else
                {
                    int len = p + step + 1;
                    var ids = Block(seq, b, width, len, device);                                       // [B, P+step+1]
                    var valid = BlockBool(seqValid, b, width, len, device);                            // [B, P+step+1]
                    logits = model.Forward(ids, valid, lastOnly: true).squeeze(1);                     // [B, V]
                }
                logits.MoveToOuterDisposeScope();
                steps++;
            }
            logits?.Dispose();
            return (state, steps);
        }
        finally
        {
            cache?.Dispose();
        }
    }

    private bool HitsStopString(List<int> tokens, string[] stops, int window)
    {
        int n = System.Math.Min(window, tokens.Count);
        var tail = tokenizer!.Decode(tokens.GetRange(tokens.Count - n, n));
        foreach (var st in stops)
            if (tail.Contains(st, StringComparison.Ordinal)) return true;
        return false;
    }

    /// <summary>The first <paramref name="len"/> columns of a row-major <c>[B, width]</c> buffer: <c>[B, len]</c> int64.</summary>
    private static Tensor Block(long[] buf, int b, long width, long len, Device device)
    {
        var part = new long[b * len];
        for (int i = 0; i < b; i++) Array.Copy(buf, i * width, part, i * len, len);
        return torch.tensor(part, [b, len], device: device);
    }

    private static Tensor BlockBool(bool[] buf, int b, long width, long len, Device device)
    {
        var part = new bool[b * len];
        for (int i = 0; i < b; i++) Array.Copy(buf, i * width, part, i * len, len);
        return torch.tensor(part, [b, len], device: device);
    }
}
