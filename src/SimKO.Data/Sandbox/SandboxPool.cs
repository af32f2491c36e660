using System.Collections.Concurrent;

namespace SimKO.Data.Sandbox;

/// <summary>
/// Grades programs in parallel on pre-started sandboxed workers, one per slot (<see cref="SandboxSettings.WorkerCount"/>,
/// one per core by default). Each program runs in a fresh child of a worker, with its own temporary folder
/// (removed afterwards, along with anything else it wrote) and the settings' limits, and every process it
/// started is killed when it ends, so one program cannot affect the next. A worker that dies or stops answering is replaced; a program whose
/// worker died under it is run once more on a fresh worker, then reported as <see cref="Outcome.SandboxError"/>.
/// Thread-safe; dispose to stop the workers (none is left running).
/// </summary>
public sealed class SandboxPool : IDisposable
{
    readonly BlockingCollection<SandboxWorker?> _slots = new();
    readonly List<SandboxWorker> _all = new();
    int _restarts;
    bool _disposed;

    public SandboxSettings Settings { get; }
    /// <summary>The isolation in use (Auto resolved to Bubblewrap or Unshare).</summary>
    public Isolation Isolation { get; }
    /// <summary>Workers started after the first one of each slot (each replaces a dead or hung one).</summary>
    public int Restarts => Volatile.Read(ref _restarts);
    /// <summary>Whether each worker is alone in a pid namespace of its own, so that every process a program
    /// starts is killed when it ends, wherever it went (false only without isolation).</summary>
    public bool PidNamespace { get; }

    /// <summary>Starts the first worker at once (so an unusable sandbox fails here, with
    /// <see cref="SandboxUnavailableException"/>); the other slots start on first use.</summary>
    public SandboxPool(SandboxSettings? settings = null)
    {
        Settings = (settings ?? SandboxSettings.Defaults).Validated();
        Isolation = SandboxLauncher.Resolve(Settings.Isolation);
        var first = SandboxWorker.Start(Settings, Isolation);
        PidNamespace = first.PidNamespace;
        lock (_all) _all.Add(first);
        _slots.Add(first);
        for (int i = 1; i < Settings.WorkerCount; i++) _slots.Add(null);
        AppDomain.CurrentDomain.ProcessExit += OnExit;
    }

    void OnExit(object? sender, EventArgs e) => Dispose();

    SandboxWorker NewWorker()
    {
        var w = SandboxWorker.Start(Settings, Isolation);
        lock (_all) _all.Add(w);
        return w;
    }

    /// <summary>Grades one program (blocks while every slot is busy).</summary>
    public GradeResult Grade(string program)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var worker = _slots.Take();
        try
        {
            string note = "";
            for (int attempt = 0; attempt < 2; attempt++)
            {
                if (worker is null || worker.Broken)
                {
                    if (worker is not null) { Retire(worker); Interlocked.Increment(ref _restarts); }
                    worker = null;
                    worker = NewWorker();
                }
                var result = worker.Run(program);
                if (result is not null) return result;
                note = worker.DeathNote();
            }
            return new GradeResult(Outcome.SandboxError, "", $"the sandbox worker died twice while running this program: {note}", 0);
        }
        finally
        {
            _slots.Add(worker is { Broken: false } ? worker : RetireToNull(worker));
        }
    }

    /// <summary>Sends one request to a free worker (blocks while every slot is busy); null when the
    /// worker died twice under it or did not answer within <paramref name="backstop"/>.</summary>
    public System.Text.Json.Nodes.JsonObject? Request(System.Text.Json.Nodes.JsonObject request, TimeSpan backstop)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var worker = _slots.Take();
        try
        {
            for (int attempt = 0; attempt < 2; attempt++)
            {
                if (worker is null || worker.Broken)
                {
                    if (worker is not null) { Retire(worker); Interlocked.Increment(ref _restarts); }
                    worker = null;
                    worker = NewWorker();
                }
                var answer = worker.Request((System.Text.Json.Nodes.JsonObject)request.DeepClone(), backstop);
                if (answer is not null) return answer;
            }
            return null;
        }
        finally
        {
            _slots.Add(worker is { Broken: false } ? worker : RetireToNull(worker));
        }
    }

    SandboxWorker? RetireToNull(SandboxWorker? w)
    {
        if (w is not null) { Retire(w); Interlocked.Increment(ref _restarts); }
        return null;
    }

    void Retire(SandboxWorker w)
    {
        lock (_all) _all.Remove(w);
        w.Dispose();
    }

    /// <summary>Grades every program, in parallel over the slots; results in the programs' order.</summary>
    public GradeResult[] GradeMany(IReadOnlyList<string> programs)
    {
        var results = new GradeResult[programs.Count];
        if (programs.Count == 0) return results;
        int next = -1;
        int threads = System.Math.Min(Settings.WorkerCount, programs.Count);
        Exception? failure = null;
        var workers = new Thread[threads];
        for (int t = 0; t < threads; t++)
        {
            workers[t] = new Thread(() =>
            {
                try
                {
                    for (int i; (i = Interlocked.Increment(ref next)) < programs.Count;) results[i] = Grade(programs[i]);
                }
                catch (Exception e) { Interlocked.CompareExchange(ref failure, e, null); Interlocked.Exchange(ref next, programs.Count); }
            }) { IsBackground = true, Name = "sandbox-grade" };
            workers[t].Start();
        }
        foreach (var w in workers) w.Join();
        if (failure is not null) throw new AggregateException("grading in the sandbox failed", failure);
        return results;
    }

    /// <summary>Stops every worker; afterwards no sandbox process of this pool is running.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        AppDomain.CurrentDomain.ProcessExit -= OnExit;
        List<SandboxWorker> all;
        lock (_all) { all = _all.ToList(); _all.Clear(); }
        Parallel.ForEach(all, w => w.Dispose());
    }
}

/// <summary>One-off sandbox runs and the availability probe.</summary>
public static class CodeSandbox
{
    /// <summary>The sentence every "cannot isolate" error ends with.</summary>
    public const string OptOut =
        "Programs are never run without isolation unless asked: pass --unsafe-no-sandbox (SandboxSettings.Isolation = Isolation.None) to run them unisolated, at your own risk";

    static readonly ConcurrentDictionary<Isolation, string> Probes = new();

    /// <summary>Null when programs can be isolated here with <paramref name="isolation"/>, else why not
    /// (the sandbox is started once per process and isolation kind, and a trivial program graded).</summary>
    public static string? Unavailable(Isolation isolation = Isolation.Auto)
    {
        var why = Probes.GetOrAdd(isolation, iso =>
        {
            try
            {
                using var pool = new SandboxPool(new SandboxSettings(Workers: 1, Isolation: iso));
                var r = pool.Grade("assert 1 + 1 == 2");
                return r.Passed ? "" : $"a trivial program did not pass in the sandbox: {r.Describe()}";
            }
            catch (SandboxUnavailableException e) { return e.Message; }
        });
        return why.Length == 0 ? null : why;
    }

    /// <summary>Runs one program in a sandbox started for it alone (a cold start: slower than a pool, the
    /// same isolation and limits).</summary>
    public static GradeResult RunOnce(string program, SandboxSettings? settings = null)
    {
        using var pool = new SandboxPool((settings ?? SandboxSettings.Defaults) with { Workers = 1 });
        return pool.Grade(program);
    }
}
