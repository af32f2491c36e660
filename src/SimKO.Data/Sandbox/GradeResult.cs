namespace SimKO.Data.Sandbox;

/// <summary>How a program ended.</summary>
public enum Outcome
{
    /// <summary>Ran to the end without an exception.</summary>
    Passed,
    /// <summary>Raised an exception (<see cref="GradeResult.ExceptionType"/>, <see cref="GradeResult.Message"/>),
    /// was killed by a signal, or exited before finishing.</summary>
    Failed,
    /// <summary>Ran past the wall-clock or CPU limit; its whole process tree was killed.</summary>
    TimedOut,
    /// <summary>Ran out of its address space (a MemoryError).</summary>
    MemoryExceeded,
    /// <summary>Printed more than the output limit; killed.</summary>
    OutputTooLarge,
    /// <summary>The sandbox itself failed (a worker that would not start or died twice on this program);
    /// not a verdict on the program, and never counted as passed.</summary>
    SandboxError,
}

/// <summary>The verdict on one program: its outcome, for failures the exception type and message
/// (e.g. "AssertionError", "expected 3"), and the wall-clock seconds it ran.</summary>
public sealed record GradeResult(Outcome Outcome, string ExceptionType, string Message, double Seconds)
{
    public bool Passed => Outcome == Outcome.Passed;

    /// <summary>HumanEval's result text: "passed", "failed: AssertionError: expected 3", "timed out", …</summary>
    public string Describe() => Outcome switch
    {
        Outcome.Passed => "passed",
        Outcome.Failed => Message.Length == 0 ? $"failed: {ExceptionType}" : $"failed: {ExceptionType}: {Message}",
        Outcome.TimedOut => "timed out",
        Outcome.MemoryExceeded => "failed: memory limit exceeded",
        Outcome.OutputTooLarge => "failed: output too large",
        Outcome.SandboxError => $"sandbox error: {Message}",
        _ => throw new InvalidOperationException($"unknown outcome {Outcome}"),
    };

    public override string ToString() => Describe();
}
