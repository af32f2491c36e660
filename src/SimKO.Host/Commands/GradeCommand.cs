using Microsoft.FSharp.Core;
using SimKO.Cli;
using SimKO.Data;
using SimKO.Data.Answers;
using SimKO.Data.Grading;

// Namespace SimKO.Host, not SimKO.Host.Commands: the latter would hide the F# module SimKO.Cli.Commands in Program.cs.
namespace SimKO.Host;

/// <summary><c>simko grade</c>: JSONL predictions in, the same lines with "extracted" and "correct" out; or, with
/// <c>--bench</c>, gradings per second on one thread.</summary>
public static class GradeCommand
{
    public static int Run(GradeArgs.GradeOptions options)
    {
        IVerifier verifier = options.Grader.IsBbh ? BbhVerifier.Default : MathVerifier.Default;
        string? input = FSharpOption<string>.get_IsSome(options.Input) ? options.Input.Value : null;
        string? output = FSharpOption<string>.get_IsSome(options.Output) ? options.Output.Value : null;
        try
        {
            if (options.Bench)
            {
                if (options.Seconds <= 0) { Console.Error.WriteLine($"--seconds {options.Seconds}: must be positive"); return 2; }
                IReadOnlyList<(Problem, string)>? cases = null;
                if (input is not null)
                {
                    using var reader = File.OpenText(input);
                    cases = GradeJsonl.ReadPairs(reader, input);
                }
                var result = GradingBenchmark.Run(TimeSpan.FromSeconds(options.Seconds), verifier, cases);
                Console.WriteLine(result);
                return 0;
            }
            using var inReader = input is null ? Console.In : File.OpenText(input);
            // A buffered writer: Console.Out flushes on every line, which is slow for large files.
            using var outWriter = new StreamWriter(output is null ? Console.OpenStandardOutput() : File.Create(output));
            var summary = GradeJsonl.Run(inReader, outWriter, verifier, input ?? "stdin");
            Console.Error.WriteLine($"graded {summary.Lines} line(s): {summary.Correct} correct");
            return 0;
        }
        catch (DataFormatException e)
        {
            Console.Error.WriteLine(e.Message);
            return 1;
        }
        catch (IOException e)
        {
            Console.Error.WriteLine(e.Message);
            return 1;
        }
    }
}
