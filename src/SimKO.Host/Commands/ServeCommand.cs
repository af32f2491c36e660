using Microsoft.Extensions.Logging;
using Microsoft.FSharp.Core;
using SimKO.Cli;
using SimKO.Host.Checkpoints;
using SimKO.Host.Runtime;
using SimKO.Host.Serving;

namespace SimKO.Host.Commands;

/// <summary>`simko serve`: load an HF folder and serve it until Ctrl+C / SIGTERM.</summary>
public static class ServeCommand
{
    public static int Run(ServeArgs.ServeOptions o, ILogger log)
    {
        try
        {
            var device = DeviceSelection.Resolve(o.Device);
            var dtype = DeviceSelection.ScalarTypeOf(o.DType);
            if (dtype == TorchSharp.torch.ScalarType.BFloat16 && device.type == TorchSharp.DeviceType.CPU)
                log.LogWarning("dtype bfloat16 on the CPU: correct but ~100x slower than float32 here (no hardware bf16); use it on CUDA");
            var tokenizer = HfFolder.LoadTokenizer(o.Model);
            using var model = HfFolder.LoadModel(o.Model, device, dtype);
            if (Microsoft.FSharp.Core.FSharpOption<string>.get_IsSome(o.Adapter)) PeftAdapter.Apply(model, o.Adapter.Value);
            model.eval();
            var chat = ChatMarkup.FromFolder(o.Model, tokenizer);
            if (chat.Unsupported is { } why) log.LogWarning("/v1/chat/completions is off: {Why}", why);
            var name = OptionModule.ToObj(o.ServedModelName) ?? Path.GetFileName(Path.GetFullPath(o.Model).TrimEnd('/'));
            var options = new Serving.ServeOptions(o.Host, o.Port, OptionModule.ToObj(o.ApiKey), o.MaxBatch, o.MaxQueue);
            var server = SimkoServer.StartAsync(model, tokenizer, chat, name, options, log).GetAwaiter().GetResult();
            try { server.WaitForShutdownAsync().GetAwaiter().GetResult(); }
            finally { server.DisposeAsync().AsTask().GetAwaiter().GetResult(); }
            return 0;
        }
        catch (Exception e) when (e is ArgumentException or InvalidDataException or FileNotFoundException or NotSupportedException or IOException)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 2;
        }
    }
}
