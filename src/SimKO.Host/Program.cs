using SimKO.Cli;
using TorchSharp;

namespace SimKO.Host;

public static class Program
{
    public static int Main(string[] args)
    {
        var parsed = Commands.parse(args);
        if (parsed is Commands.Parsed.Exit exit)
        {
            (exit.code == 0 ? Console.Out : Console.Error).WriteLine(exit.message);
            return exit.code;
        }
        var command = ((Commands.Parsed.Run)parsed).Item;
        switch (command)
        {
            case var c when c.IsInfo:
                Console.WriteLine($"TorchSharp {typeof(torch).Assembly.GetName().Version}, libtorch {torch.__version__}");
                Console.WriteLine($"CUDA available: {torch.cuda.is_available()}; threads: {torch.get_num_threads()}");
                return 0;
            case Commands.Command.Tokenize t:
                return SimKO.Host.CommandHandlers.TokenizeCommand.Run(t.Item);
            case Commands.Command.BenchRollout b:
                return SimKO.Host.CommandHandlers.BenchRolloutCommand.Run(b.Item);
            default:
                Console.Error.WriteLine($"not implemented: {command}");
                return 2;
        }
    }
}
