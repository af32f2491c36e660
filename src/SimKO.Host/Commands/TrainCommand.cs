using Microsoft.Extensions.Logging;
using SimKO.Cli;
using SimKO.Host.Runs;

namespace SimKO.Host.Commands;

/// <summary>`simko train`: one RL run from its typed spec (parsed and validated by SimKO.Cli).</summary>
public static class TrainCommand
{
    public static int Run(RunSpec.TrainSpec spec, bool resume, ILogger log)
    {
        try
        {
            using var run = RunFactory.Build(spec, log);
            var result = run.Trainer.Run(resume);
            log.LogInformation("done: {Steps} steps; final model in {Final}", result.StepsDone, result.FinalModel);
            return 0;
        }
        catch (Exception e) when (e is ArgumentException or InvalidDataException or FileNotFoundException or DirectoryNotFoundException
                                      or InvalidOperationException or NotSupportedException or SimKO.Data.Math.DatasetException)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 1;
        }
    }
}
