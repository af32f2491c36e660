using SimKO.Host.Checkpoints;
using SimKO.Host.Model;
using SimKO.Host.Rollout;

namespace SimKO.Host.Serving;

/// <summary>
/// The LoRA adapters <c>simko serve</c> holds by name, with vLLM's semantics (<c>POST /v1/load_lora_adapter</c>,
/// <c>/v1/unload_lora_adapter</c>; a request selects an adapter by naming it as its <c>model</c>, and the base
/// model by its own name). The engine decodes one variant at a time (the adapter is attached to the one model), so
/// the requests of the variant now attached run together; a request for another variant waits until they have
/// finished, then the engine swaps adapters (<see cref="ContinuousBatcher.SwapWeights"/>, which adds one to the
/// weights version) and the waiting requests of that variant run. Requests that wait are served in arrival order of
/// their variants, so no variant starves. Loading an adapter reads and checks it first (a malformed one changes
/// nothing) and then switches to it, so its weights version is the one its requests will report.
/// </summary>
public sealed class ServedAdapters
{
    readonly ContinuousBatcher _engine;
    /// <summary>The adapter the server was started with (<c>--adapter</c>): part of the base variant.</summary>
    readonly PeftAdapter.Loaded? _startup;
    readonly object _lock = new();
    readonly Dictionary<string, PeftAdapter.Loaded> _loaded = new();
    // a variant is keyed by its adapter object (Base for the base), not its name: an adapter unloaded and loaded again
    // under the same name is another variant, and must be attached again
    static readonly object Base = new();
    readonly LinkedList<(object Key, TaskCompletionSource Go)> _waiting = new();
    object _current = Base;         // the attached variant
    int _running;                   // requests of the current variant in flight
    bool _switching;
    PeftAdapter.Loaded? _copying;   // the adapter a switch is attaching (disposed after it when unloaded meanwhile)
    bool _disposeAfterCopy;

    public ServedAdapters(CausalLM model, ContinuousBatcher engine)
    {
        _engine = engine;
        _startup = PeftAdapter.Capture(model, "--adapter");
    }

    /// <summary>The loaded adapters' names and folders, in name order.</summary>
    public IReadOnlyList<(string Name, string Folder)> List()
    {
        lock (_lock) return _loaded.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => (kv.Key, kv.Value.Folder)).ToList();
    }

    public bool IsLoaded(string name) { lock (_lock) return _loaded.ContainsKey(name); }

    /// <summary>Read and check the PEFT folder against the model, register it under <paramref name="name"/> and
    /// attach it (waiting for the requests of another variant to finish); returns the weights version it is served
    /// at. A bad folder throws (<see cref="InvalidDataException"/>, <see cref="FileNotFoundException"/>) and changes nothing.</summary>
    public async Task<long> Load(string name, string folder, CausalLM model)
    {
        if (IsLoaded(name)) throw new InvalidOperationException($"the adapter '{name}' is already loaded; unload it first or load under another name");
        var adapter = PeftAdapter.Read(model, folder);
        lock (_lock)
        {
            if (_loaded.ContainsKey(name))
            {
                adapter.Dispose();
                throw new InvalidOperationException($"the adapter '{name}' is already loaded; unload it first or load under another name");
            }
            _loaded[name] = adapter;
        }
        using (await Enter(name)) return _engine.WeightsVersion;
    }

    /// <summary>Forget an adapter; false when none has that name. Requests of it in flight finish with it (the model holds
    /// its own copy); requests waiting for it fail.</summary>
    public bool Unload(string name)
    {
        lock (_lock)
        {
            if (!_loaded.Remove(name, out var adapter)) return false;
            if (ReferenceEquals(adapter, _copying)) _disposeAfterCopy = true;
            else adapter.Dispose();
            return true;
        }
    }

    /// <summary>Wait until <paramref name="name"/> (an adapter, or null for the base) is attached and hold it
    /// attached until the returned lease is disposed. Throws <see cref="KeyNotFoundException"/> when the adapter
    /// was unloaded before it could be attached.</summary>
    public async Task<IDisposable> Enter(string? name)
    {
        TaskCompletionSource go;
        lock (_lock)
        {
            object key = name is null ? Base
                : _loaded.TryGetValue(name, out var adapter) ? adapter
                : throw new KeyNotFoundException($"no adapter '{name}' is loaded");
            if (!_switching && _waiting.Count == 0 && key == _current)
            {
                _running++;
                return new Lease(this);
            }
            go = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _waiting.AddLast((key, go));
            PumpLocked();
        }
        await go.Task;
        return new Lease(this);
    }

    sealed class Lease(ServedAdapters owner) : IDisposable
    {
        int _done;
        public void Dispose()
        {
            if (Interlocked.Exchange(ref _done, 1) == 1) return;
            lock (owner._lock)
            {
                owner._running--;
                owner.PumpLocked();
            }
        }
    }

    /// <summary>Admit the waiting requests of the current variant, or start a switch to the first waiter's variant
    /// once nothing of the current one runs (under the lock).</summary>
    void PumpLocked()
    {
        if (_switching || _waiting.Count == 0) return;
        var first = _waiting.First!.Value.Key;
        if (first == _current) { AdmitLocked(first); return; }
        if (_running > 0) return;
        var target = first as PeftAdapter.Loaded;
        if (target is not null && !_loaded.ContainsValue(target))
        {
            FailLocked(first, new KeyNotFoundException($"the adapter from {target.Folder} was unloaded before it could be served"));
            PumpLocked();
            return;
        }
        _switching = true;
        _copying = target;
        _ = Switch(first, target ?? _startup);
    }

    void AdmitLocked(object key)
    {
        for (var node = _waiting.First; node is not null;)
        {
            var next = node.Next;
            if (node.Value.Key == key)
            {
                _running++;
                node.Value.Go.TrySetResult();
                _waiting.Remove(node);
            }
            node = next;
        }
    }

    void FailLocked(object key, Exception error)
    {
        for (var node = _waiting.First; node is not null;)
        {
            var next = node.Next;
            if (node.Value.Key == key) { node.Value.Go.TrySetException(error); _waiting.Remove(node); }
            node = next;
        }
    }

    async Task Switch(object key, PeftAdapter.Loaded? adapter)
    {
        Exception? error = null;
        try
        {
            await _engine.SwapWeights(m =>
            {
                if (adapter is null) m.DetachLora();
                else PeftAdapter.Attach(m, adapter);
            });
        }
        catch (Exception e) { error = e; }
        lock (_lock)
        {
            _switching = false;
            if (_disposeAfterCopy) { _copying?.Dispose(); _disposeAfterCopy = false; }
            _copying = null;
            if (error is null)
            {
                _current = key;
                AdmitLocked(key);
            }
            else FailLocked(key, error);
            PumpLocked();
        }
    }
}
