using SimKO.Host.Model;
using static TorchSharp.torch;

namespace SimKO.Host.Rollout;

/// <summary>How one sequence is sampled: temperature (0 = greedy), top-k (0 = off), top-p (1 = off),
/// the most new tokens, and what ends it (a stop token or stop string, both kept in the response).</summary>
public sealed record SamplingSettings(double Temperature, double TopP, int TopK, int MaxNewTokens)
{
    public IReadOnlyList<int> StopTokenIds { get; init; } = [];
    public IReadOnlyList<string> StopStrings { get; init; } = [];
}

/// <summary>One sequence to generate: its prompt ids, sampling settings and its own seed (the seed
/// alone fixes its tokens, whatever else is in the batch). <paramref name="PromptLogProbs"/> asks for
/// log p(prompt[t] | prompt[:t]) under the raw model (temperature 1), as an echo needs.</summary>
public sealed record SequenceJob(int[] Prompt, SamplingSettings Sampling, long Seed, bool PromptLogProbs = false)
{
    /// <summary>Cancelled when the client goes away: the sequence leaves the queue or its slot at the next step.</summary>
    public CancellationToken Cancellation { get; init; }
}

public enum FinishReason { Stop, Length }

/// <summary>A finished sequence: its tokens, the sampler's log-prob of each (under the distribution it
/// sampled from), why it stopped, the prompt's log-probs when asked (first null), and the weights
/// version that produced every token of it.</summary>
public sealed record SequenceResult(int[] Tokens, float[] LogProbs, FinishReason Finish, string? StopString, float?[]? PromptLogProbs, long WeightsVersion);

/// <summary>The queue of waiting sequences is full; the caller should retry later.</summary>
public sealed class QueueFullException(string message) : Exception(message);

/// <summary>One sequence failed on its own (e.g. its tokens cannot be decoded for a stop string); the others go on.</summary>
public sealed class SequenceFaultException(string message, Exception inner) : Exception(message, inner);

/// <summary>What the engine has done so far (for tests and the bench).</summary>
public sealed record BatcherStats(int MaxActiveRows, long Admitted, long SlotReuses, long DecodeSteps, long GeneratedTokens, long Compactions, long FrontDrops);

/// <summary>
/// Continuous batching over a <see cref="CausalLM"/> with a KV cache. Each cache row is a slot: a
/// sequence joins the running batch as soon as a slot is free (its prompt is prefilled on its own, then
/// copied into the slot, right-aligned to the batch's time axis), and a finished sequence frees its slot
/// at once, so short responses never wait for long ones. Tokens come from the shared
/// <see cref="TokenSampler"/>, every sequence with its own <see cref="SequenceRng"/>, so a seeded
/// sequence samples the same tokens whatever else is in the batch (and as <see cref="KvCacheSampler"/> does). One thread runs the model; weight swaps run on
/// it between batches (when no sequence is in flight), never mid-sequence.
/// </summary>
public sealed class ContinuousBatcher : IRolloutEngine, IDisposable
{
    readonly CausalLM _model;
    readonly int _padId;
    readonly Func<IReadOnlyList<int>, string>? _decode;
    readonly Thread _thread;
    readonly object _lock = new();
    readonly Queue<Row> _queue = new();
    readonly Queue<(Action<CausalLM> Load, TaskCompletionSource<long> Done)> _swaps = new();
    bool _stopping;

    // engine-thread state
    KvCache? _cache;
    Row?[] _rows = [];
    readonly List<Row> _finishedUnplaced = [];
    bool[] _used = [];
    int _maxActive;
    long _admitted, _reuses, _steps, _tokens, _compactions, _drops;
    long _version;

    /// <summary>Most sequences decoded together (cache rows).</summary>
    public int MaxRows { get; }
    /// <summary>Most sequences waiting for a slot before <see cref="Submit"/> refuses (in-process <see cref="Generate"/> is not bounded).</summary>
    public int MaxQueue { get; }
    /// <summary>Prefill budget: prompts are prefilled in groups of at most this many logits (rows × length × vocab).</summary>
    public long PrefillLogitsBudget { get; init; } = 1L << 26;
    /// <summary>Ids the tokenizer has (0 = the model's whole vocabulary): larger ids are never sampled (<see cref="TokenSampler.MaskBeyond"/>).</summary>
    public int SampledVocab { get; init; }

    public ContinuousBatcher(CausalLM model, int padId, int maxRows = 64, int maxQueue = 4096, Func<IReadOnlyList<int>, string>? decode = null)
    {
        if (maxRows < 1) throw new ArgumentOutOfRangeException(nameof(maxRows), maxRows, "at least one row");
        if (maxQueue < 0) throw new ArgumentOutOfRangeException(nameof(maxQueue), maxQueue, "not negative");
        _model = model; _padId = padId; _decode = decode; MaxRows = maxRows; MaxQueue = maxQueue;
        _thread = new Thread(Loop) { IsBackground = true, Name = "simko-batcher" };
        _thread.Start();
    }

    /// <summary>The weights version: 0 at start, +1 per completed <see cref="SwapWeights"/>.</summary>
    public long WeightsVersion => Interlocked.Read(ref _version);

    /// <summary>Sequences waiting for a slot.</summary>
    public int Queued { get { lock (_lock) return _queue.Count; } }

    public BatcherStats Stats { get { lock (_lock) return new(_maxActive, _admitted, _reuses, _steps, _tokens, _compactions, _drops); } }

    /// <summary>Queue one sequence; throws <see cref="QueueFullException"/> when <see cref="MaxQueue"/> are already waiting.</summary>
    public Task<SequenceResult> Submit(SequenceJob job) => SubmitAll([job], bounded: true)[0];

    /// <summary>Queue several sequences at once (all or none): the n samples of one request.</summary>
    public IReadOnlyList<Task<SequenceResult>> SubmitAll(IReadOnlyList<SequenceJob> jobs, bool bounded = true)
    {
        foreach (var j in jobs) Check(j);
        var rows = jobs.Select(j => new Row(j)).ToList();
        lock (_lock)
        {
            if (_stopping) throw new ObjectDisposedException(nameof(ContinuousBatcher));
            DropCancelledQueued();
            if (bounded && _queue.Count + rows.Count > MaxQueue)
                throw new QueueFullException($"the queue holds {_queue.Count} sequences waiting (max {MaxQueue}); {rows.Count} more do not fit");
            foreach (var r in rows) _queue.Enqueue(r);
            Monitor.PulseAll(_lock);
        }
        // a cancelled request wakes the engine, which frees its queue places and slots at once
        foreach (var t in jobs.Select(j => j.Cancellation).Where(c => c.CanBeCanceled).Distinct())
            t.Register(() => { lock (_lock) { _cancelled = true; Monitor.PulseAll(_lock); } });
        return rows.Select(r => r.Done.Task).ToList();
    }

    bool _cancelled;

    /// <summary>Remove queued sequences whose request was cancelled (under the lock).</summary>
    void DropCancelledQueued()
    {
        if (!_queue.Any(r => r.Job.Cancellation.IsCancellationRequested)) return;
        var keep = _queue.Where(r => !r.Job.Cancellation.IsCancellationRequested).ToList();
        foreach (var r in _queue.Where(r => r.Job.Cancellation.IsCancellationRequested)) r.Done.TrySetCanceled(r.Job.Cancellation);
        _queue.Clear();
        foreach (var r in keep) _queue.Enqueue(r);
    }

    /// <summary>Free the slots of running sequences whose request was cancelled (engine thread).</summary>
    void DropCancelledRows()
    {
        bool any = false;
        for (int i = 0; i < _rows.Length; i++)
            if (_rows[i] is { } r && r.Job.Cancellation.IsCancellationRequested)
            {
                r.Done.TrySetCanceled(r.Job.Cancellation);
                _rows[i] = null;
                any = true;
            }
        if (any && Active == 0) ResetCache();
    }

    /// <summary>Run <paramref name="load"/> on the engine thread once no sequence is in flight (new ones
    /// wait meanwhile); returns the new weights version.</summary>
    public Task<long> SwapWeights(Action<CausalLM> load)
    {
        var done = new TaskCompletionSource<long>(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_lock)
        {
            if (_stopping) throw new ObjectDisposedException(nameof(ContinuousBatcher));
            _swaps.Enqueue((load, done));
            Monitor.PulseAll(_lock);
        }
        return done.Task;
    }

    /// <summary>The trainer's seam: every prompt × n samples, with seeds from <see cref="RolloutSeeds"/>.</summary>
    public IReadOnlyList<Generated> Generate(GenerateRequest r)
    {
        if (r.Prompts.Count == 0) return [];
        var settings = new SamplingSettings(r.Temperature, r.TopP, r.TopK, r.MaxNewTokens) { StopTokenIds = r.StopTokenIds, StopStrings = r.StopStrings };
        var jobs = new List<SequenceJob>();
        for (int i = 0; i < r.Prompts.Count; i++)
        {
            for (int j = 0; j < r.SamplesPerPrompt; j++)
                jobs.Add(new SequenceJob(r.Prompts[i], settings, RolloutSeeds.Sequence(r.Seed, r.PromptIndexBase + i, j)));
        }
        var tasks = SubmitAll(jobs, bounded: false);
        Task.WaitAll(tasks.ToArray());
        return tasks.Select((t, k) => new Generated(k / r.SamplesPerPrompt, t.Result.Tokens, t.Result.LogProbs)).ToList();
    }

    void Check(SequenceJob j)
    {
        if (j.Prompt.Length == 0) throw new ArgumentException("every prompt needs at least one token");
        var s = j.Sampling;
        if (s.MaxNewTokens < 0) throw new ArgumentException($"max new tokens is {s.MaxNewTokens}, expected ≥ 0");
        _model.Config.CheckSequenceLength(j.Prompt.Length, s.MaxNewTokens);
        if (!(s.Temperature >= 0)) throw new ArgumentException($"temperature is {s.Temperature}, expected ≥ 0");
        if (!(s.TopP > 0 && s.TopP <= 1)) throw new ArgumentException($"top_p is {s.TopP}, expected in (0, 1]");
        if (s.TopK < 0) throw new ArgumentException($"top_k is {s.TopK}, expected ≥ 0 (0 = off)");
        if (s.StopStrings.Count > 0 && _decode is null) throw new ArgumentException("stop strings need the engine to be given the tokenizer's decode function");
        var vocab = _model.Config.VocabSize;
        foreach (var id in j.Prompt)
            if (id < 0 || id >= vocab) throw new ArgumentException($"prompt token id {id} is outside the vocabulary (size {vocab})");
    }

    public void Dispose()
    {
        lock (_lock) { _stopping = true; Monitor.PulseAll(_lock); }
        _thread.Join();
    }

    // ------------------------------------------------------------------ engine thread

    sealed class Row(SequenceJob job)
    {
        public readonly SequenceJob Job = job;
        public readonly TaskCompletionSource<SequenceResult> Done = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public readonly SequenceRng Rng = new(job.Seed);
        public readonly List<int> Tokens = [];
        public readonly List<float> LogProbs = [];
        public float?[]? PromptLogProbs;
        public long Start;              // first cache column of this sequence (its prompt's first token)
        public string? StopString;
        public bool Finished;
        public Exception? Fault;        // set when this sequence alone failed (it completes with this error)
    }

    void Loop()
    {
        while (true)
        {
            List<Row> admitted;
            (Action<CausalLM> Load, TaskCompletionSource<long> Done)? swap = null;
            lock (_lock)
            {
                while (!_stopping && Active == 0 && _queue.Count == 0 && _swaps.Count == 0) Monitor.Wait(_lock);
                if (_stopping) break;
                if (_cancelled) { _cancelled = false; DropCancelledQueued(); }
                if (_swaps.Count > 0 && Active == 0) swap = _swaps.Dequeue();
                admitted = [];
                if (_swaps.Count == 0 && swap is null)
                    while (_queue.Count > 0 && Active + admitted.Count < MaxRows) admitted.Add(_queue.Dequeue());
            }
            try
            {
                if (swap is { } s)
                {
                    try
                    {
                        using (no_grad()) s.Load(_model);
                        s.Done.SetResult(Interlocked.Increment(ref _version));
                    }
                    catch (Exception e) { s.Done.SetException(e); }
                    continue;
                }
                using var _ = no_grad();
                DropCancelledRows();
                if (admitted.Count > 0) Admit(admitted);
                if (Active > 0) DecodeStep();
            }
            catch (Exception e)
            {
                // a failure of the model fails the sequences in flight, never the engine
                foreach (var r in admitted.Concat(_rows.Where(x => x is not null)!).Distinct())
                    r!.Done.TrySetException(new InvalidOperationException($"the rollout engine failed: {e.Message}", e));
                ResetCache();
            }
        }
        var error = new ObjectDisposedException(nameof(ContinuousBatcher), "the engine was stopped");
        foreach (var r in _rows) r?.Done.TrySetException(error);
        lock (_lock)
        {
            foreach (var r in _queue) r.Done.TrySetException(error);
            foreach (var s in _swaps) s.Done.TrySetException(error);
        }
        ResetCache();
    }

    int Active => _rows.Count(r => r is not null);

    Device Device => _model.model.embed_tokens.weight!.device;

    void ResetCache()
    {
        _cache?.Dispose();
        _cache = null;
        _rows = [];
        _used = [];
    }

    /// <summary>Prefill the prompts of new sequences (each distinct prompt once), sample their first
    /// tokens, and place their keys/values into free slots.</summary>
    void Admit(List<Row> admitted)
    {
        var distinct = admitted.Select(r => r.Job.Prompt).Distinct(ReferenceEqualityComparer.Instance).Cast<int[]>().ToList();
        long vocab = _model.Config.VocabSize;
        int start = 0;
        while (start < distinct.Count)
        {
            // a group of prompts within the prefill budget (at least one)
            int count = 1;
            while (start + count < distinct.Count
                   && (count + 1L) * distinct.Skip(start).Take(count + 1).Max(p => p.Length) * vocab <= PrefillLogitsBudget) count++;
            var group = distinct.GetRange(start, count);
            var rows = admitted.Where(r => group.Contains(r.Job.Prompt, ReferenceEqualityComparer.Instance)).ToList();
            Prefill(group, rows);
            start += count;
        }
        lock (_lock) { _admitted += admitted.Count; _maxActive = System.Math.Max(_maxActive, Active); }
        Finish();
    }

    void Prefill(List<int[]> prompts, List<Row> rows)
    {
        using var scope = NewDisposeScope();
        var (idsT, mask) = LeftPadding.Pad(prompts, _padId, Device);                                    // (U, P), (U, P)
        int p = (int)idsT.shape[1];
        // a prefill that becomes the engine's cache (nothing else in flight) gets room for its rows' whole responses at
        // once (cache length p + max new − 1): growing by doubling took new memory four times over a 128-token response,
        // and fresh pages are slow on a VM (~6 µs each on the dev machine: 0.6 s of a 4-s Generate at 16 rows); a prefill
        // that is only copied into slots of the running cache needs its prompt's positions alone
        bool becomesCache = _cache is null || Active == 0;
        int room = becomesCache ? rows.Max(r => r.Job.Sampling.MaxNewTokens) : 0;
        var prefill = new KvCache(_model.Config.NumHiddenLayers, p + System.Math.Max(room - 1, 0));
        bool placed = false;
        try
        {
            // every position's logits only when a request wants its prompt's log-probs; else the LM head runs on the last
            bool promptLogProbs = rows.Any(r => r.Job.PromptLogProbs);
            var logits = _model.Forward(idsT, mask, CausalLM.PositionsFromMask(mask), prefill, lastPositionOnly: !promptLogProbs).to(ScalarType.Float32);   // (U, P or 1, V)
            var promptOf = rows.Select(r => prompts.FindIndex(x => ReferenceEquals(x, r.Job.Prompt))).ToArray();
            if (promptLogProbs)
            {
                var logp = logits.narrow(1, 0, p - 1).log_softmax(-1).gather(-1, idsT.narrow(1, 1, p - 1).unsqueeze(-1)).squeeze(-1).cpu(); // (U, P-1)
                var flat = logp.data<float>().ToArray();
                foreach (var (r, k) in rows.Select((r, k) => (r, k)).Where(x => x.r.Job.PromptLogProbs))
                {
                    int len = prompts[promptOf[k]].Length, off = p - len;
                    var values = new float?[len];
                    for (int t = 1; t < len; t++) values[t] = flat[promptOf[k] * (p - 1) + off + t - 1];
                    r.PromptLogProbs = values;
                }
            }
            // first tokens: each sequence samples from its prompt's last logits with its own generator
            var last = logits.select(1, -1).index_select(0, tensor(promptOf.Select(x => (long)x).ToArray(), device: Device));  // (S, V)
            var live = rows.Where(r => r.Job.Sampling.MaxNewTokens > 0).ToList();
            if (live.Count > 0)
            {
                var liveIdx = rows.Select((r, k) => (r, k)).Where(x => x.r.Job.Sampling.MaxNewTokens > 0).Select(x => (long)x.k).ToArray();
                var (tokens, logps) = SampleRows(last.index_select(0, tensor(liveIdx, device: Device)), live);
                for (int k = 0; k < live.Count; k++) Push(live[k], tokens[k], logps[k]);
            }
            foreach (var r in rows.Where(r => r.Job.Sampling.MaxNewTokens == 0)) r.Finished = true;

            // place the sequences that go on into slots
            _finishedUnplaced.AddRange(rows.Where(r => r.Finished));
            var going = rows.Select((r, k) => (r, k)).Where(x => !x.r.Finished).ToList();
            if (going.Count == 0) return;
            if (_cache is null || Active == 0)
            {
                ResetCache();
                prefill.Select(tensor(going.Select(x => (long)promptOf[x.k]).ToArray(), device: Device));
                _cache = prefill; placed = true;
                _rows = going.Select(x => (Row?)x.r).ToArray();
                _used = Enumerable.Repeat(true, _rows.Length).ToArray();
                foreach (var (r, k) in going) r.Start = p - prompts[promptOf[k]].Length;
                return;
            }
            long L = _cache.Length;
            if (p > L)
            {
                _cache.PadFront(p - L);
                foreach (var r in _rows) if (r is not null) r.Start += p - L;
                L = p;
            }
            var free = Enumerable.Range(0, _rows.Length).Where(i => _rows[i] is null).ToList();
            int extra = System.Math.Max(0, going.Count - free.Count);
            if (extra > 0)
            {
                _cache.AddRows(extra);
                free.AddRange(Enumerable.Range(_rows.Length, extra));
                Array.Resize(ref _rows, _rows.Length + extra);
                Array.Resize(ref _used, _used.Length + extra);
            }
            for (int i = 0; i < going.Count; i++)
            {
                var (r, k) = going[i];
                int slot = free[i];
                _cache.PlaceRow(slot, prefill, promptOf[k]);
                r.Start = L - prompts[promptOf[k]].Length;
                if (_used[slot]) lock (_lock) _reuses++;
                _used[slot] = true;
                _rows[slot] = r;
            }
        }
        finally
        {
            if (!placed) prefill.Dispose();
        }
    }

    void DecodeStep()
    {
        using var scope = NewDisposeScope();
        var cache = _cache!;
        long b = _rows.Length, L = cache.Length;
        var fed = new long[b];
        var starts = new long[b];
        var positions = new long[b];
        for (int i = 0; i < b; i++)
        {
            var r = _rows[i];
            fed[i] = r is null ? _padId : r.Tokens[^1];
            starts[i] = r is null ? L + 1 : r.Start;          // a free slot attends to nothing but itself
            positions[i] = r is null ? 0 : L - r.Start;
        }
        var mask = arange(L + 1, device: Device).unsqueeze(0).ge(tensor(starts, device: Device).unsqueeze(1));  // (B, L+1)
        var logits = _model.Forward(tensor(fed, [b, 1], device: Device), mask, tensor(positions, [b, 1], device: Device), cache)
            .select(1, -1).to(ScalarType.Float32);                                                            // (B, V)
        var activeIdx = Enumerable.Range(0, (int)b).Where(i => _rows[i] is not null).ToArray();
        var active = activeIdx.Select(i => _rows[i]!).ToList();
        // every slot busy (the usual step): no gather of the [B, V] logits
        var activeLogits = activeIdx.Length == b ? logits : logits.index_select(0, tensor(activeIdx.Select(i => (long)i).ToArray(), device: Device));   // (S, V)
        var (tokens, logps) = SampleRows(activeLogits, active);
        for (int k = 0; k < active.Count; k++) Push(active[k], tokens[k], logps[k]);
        lock (_lock) _steps++;
        Finish();
    }

    void Push(Row r, int token, float logp)
    {
        r.Tokens.Add(token);
        r.LogProbs.Add(logp);
        lock (_lock) _tokens++;
        var s = r.Job.Sampling;
        if (s.StopTokenIds.Contains(token)) r.Finished = true;
        else if (s.StopStrings.Count > 0)
        {
            // a fault of one sequence (its text cannot be decoded) ends that sequence alone, never the batch
            try
            {
                var text = _decode!(r.Tokens);
                r.StopString = s.StopStrings.FirstOrDefault(text.EndsWith);
            }
            catch (Exception e) { r.Fault = e; r.Finished = true; return; }
            if (r.StopString is not null) r.Finished = true;
        }
        if (r.Tokens.Count >= s.MaxNewTokens) r.Finished = true;
    }

    /// <summary>Complete finished sequences, free their slots at once, and keep the cache compact.</summary>
    void Finish()
    {
        var version = WeightsVersion;
        void Complete(Row r)
        {
            if (r.Fault is { } fault)
            {
                r.Done.TrySetException(new SequenceFaultException($"sequence {r.Job.Seed}: {fault.Message}", fault));
                return;
            }
            var s = r.Job.Sampling;
            bool stopped = r.StopString is not null || (r.Tokens.Count > 0 && s.StopTokenIds.Contains(r.Tokens[^1]));
            r.Done.TrySetResult(new SequenceResult(r.Tokens.ToArray(), r.LogProbs.ToArray(), stopped ? FinishReason.Stop : FinishReason.Length,
                r.StopString, r.PromptLogProbs, version));
        }
        for (int i = 0; i < _rows.Length; i++)
            if (_rows[i] is { Finished: true } r) { Complete(r); _rows[i] = null; }
        // sequences that finished at their first token (or asked for none) never took a slot
        foreach (var r in _finishedUnplaced) Complete(r);
        _finishedUnplaced.Clear();
        if (_cache is null) return;
        int active = Active;
        if (active == 0) { ResetCache(); return; }
        if (_rows.Length >= 8 && active <= _rows.Length / 2)
        {
            var keep = Enumerable.Range(0, _rows.Length).Where(i => _rows[i] is not null).ToArray();
            using (NewDisposeScope()) _cache.Select(tensor(keep.Select(i => (long)i).ToArray(), device: Device));
            _rows = keep.Select(i => _rows[i]).ToArray();
            _used = keep.Select(_ => true).ToArray();
            lock (_lock) _compactions++;
        }
        long minStart = _rows.Where(r => r is not null).Min(r => r!.Start);
        if (minStart >= 32 && minStart >= _cache.Length / 4)
        {
            _cache.DropFront(minStart);
            foreach (var r in _rows) if (r is not null) r.Start -= minStart;
            lock (_lock) _drops++;
        }
    }

    /// <summary>Sample one token per row from logits [S, V] with each row's filter and generator.</summary>
    (int[] Tokens, float[] LogProbs) SampleRows(Tensor logits, IReadOnlyList<Row> rows) =>
        TokenSampler.Sample(logits, rows.Select(r => new TokenFilter(r.Job.Sampling.Temperature, r.Job.Sampling.TopK, r.Job.Sampling.TopP)).ToList(),
            rows.Select(r => r.Rng).ToList(), SampledVocab);
}
