using SimKO.Data.Sandbox;

namespace SimKO.Host.Runs;

/// <summary>The process's one pool of sandboxed Python workers, started on first use (code rewards:
/// the program task, HumanEval) and stopped when the process exits. Isolation is required unless
/// the run opted out with unsafe_no_sandbox / --unsafe-no-sandbox before first use.</summary>
public static class SharedSandbox
{
    static readonly object Gate = new();
    static SandboxPool? _pool;
    static bool _unsafe;

    /// <summary>Run code without isolation (limits and timeouts only). Must be chosen before the pool starts.</summary>
    public static void AllowUnisolated(bool allow)
    {
        lock (Gate)
        {
            if (_pool is not null && allow != _unsafe)
                throw new InvalidOperationException("the code sandbox has already started; choose unsafe_no_sandbox before any code is graded");
            _unsafe = allow;
        }
    }

    /// <summary>Whether code runs without isolation (chosen by the run).</summary>
    public static bool IsUnisolated { get { lock (Gate) return _unsafe; } }

    public static SandboxPool Pool
    {
        get
        {
            lock (Gate)
            {
                if (_pool is not null) return _pool;
                var settings = _unsafe ? new SandboxSettings(Isolation: Isolation.None) : new SandboxSettings();
                _pool = new SandboxPool(settings);
                AppDomain.CurrentDomain.ProcessExit += (_, _) => _pool?.Dispose();
                return _pool;
            }
        }
    }
}
