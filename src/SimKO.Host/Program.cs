using Microsoft.FSharp.Core;
using CliCommands = SimKO.Cli.Commands;
using SimKO.Host.Commands;
using TorchSharp;

namespace SimKO.Host;

public static class Program
{
    public static int Main(string[] args)
    {
        // a diagnostic of the launch's collectives (issue 21), run under mpirun; not a training command
        if (args.Length > 0 && args[0] == CollectiveCheckCommand.Name) return CollectiveCheckCommand.Run(args[1..]);
        var parsed = CliCommands.parse(args);
        if (parsed is CliCommands.Parsed.Exit exit)
        {
            (exit.code == 0 ? Console.Out : Console.Error).WriteLine(exit.message);
            return exit.code;
        }
        var command = ((CliCommands.Parsed.Run)parsed).Item;
        switch (command)
        {
            case var c when c.IsInfo:
                Console.WriteLine($"TorchSharp {typeof(torch).Assembly.GetName().Version}, libtorch {torch.__version__}");
                Console.WriteLine($"CUDA available: {torch.cuda.is_available()}; threads: {torch.get_num_threads()}");
                return 0;
            case CliCommands.Command.Loss loss:
                return LossCommand.Run(loss.Item.Input, OptionModule.ToObj(loss.Item.Output));
            case CliCommands.Command.Train train:
                return TrainCommand.Run(train.Item1, train.resume, Logging.Create("train"));
            case CliCommands.Command.Eval eval:
                return EvalCommand.Run(eval.Item, Logging.Create("eval"));
            case CliCommands.Command.Grade grade:
                return grade.Item.Task.IsHumanEval
                    ? GradeCommand.RunHumanEval(OptionModule.ToObj(grade.Item.Data), OptionModule.ToObj(grade.Item.Input), OptionModule.ToObj(grade.Item.Output), grade.Item.UnsafeNoSandbox)
                    : GradeCommand.Run(grade.Item.Task, OptionModule.ToObj(grade.Item.Input), OptionModule.ToObj(grade.Item.Output));
            case CliCommands.Command.Tokenize tokenize:
                return TokenizeCommand.Run(tokenize.Item.Tokenizer, OptionModule.ToObj(tokenize.Item.Input), OptionModule.ToObj(tokenize.Item.Output));
            case CliCommands.Command.Reproduce reproduce:
                return SimKO.Host.Commands.ReproduceCommand.Run(reproduce.Item, Logging.Create("reproduce"));
            case CliCommands.Command.Bench bench:
                return SimKO.Host.Commands.BenchCommand.Run(bench.Item.Quick, bench.Item.Out, bench.Item.Only.ToList(), bench.Item.Device, Logging.Create("bench"), bench.Item.Full);
            case CliCommands.Command.Serve serve:
                return ServeCommand.Run(serve.Item, Logging.Create("serve"));
            case CliCommands.Command.Score score:
                return ScoreCommand.Run(score.Item);
            case CliCommands.Command.Plan plan:
                return PlanCommand.Run(plan.Item);
            default:
                Console.Error.WriteLine($"not implemented: {command}");
                return 2;
        }
    }
}
